"""Non-image instances that reference the CT: a Comprehensive SR and an RT Structure Set."""

from __future__ import annotations

import math

from pydicom import Dataset
from pydicom.uid import ComprehensiveSRStorage, CTImageStorage, RTStructureSetStorage

from pacsguard.sample.headers import DETACHED_STUDY, base_dataset
from pacsguard.sample.identities import dicom_date, french_date
from pacsguard.sample.plan import SeriesPlan


def _item(**elements: object) -> Dataset:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item


def _concept(value: str, scheme: str, meaning: str) -> list[Dataset]:
    return [_item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)]


def _sop_refs(uids: list[str]) -> list[Dataset]:
    return [_item(ReferencedSOPClassUID=CTImageStorage, ReferencedSOPInstanceUID=u) for u in uids]


def sr_instance(series: SeriesPlan, sop_uid: str, ct: SeriesPlan, ct_uids: list[str]) -> Dataset:
    study = series.study
    who = study.identity
    ds = base_dataset(ComprehensiveSRStorage, sop_uid, series, 1)
    ds.ValueType = "CONTAINER"
    ds.ConceptNameCodeSequence = _concept("18748-4", "LN", "Diagnostic Imaging Report")
    ds.ContinuityOfContent = "SEPARATE"
    ds.CompletionFlag = "COMPLETE"
    ds.VerificationFlag = "VERIFIED"
    ds.VerifyingObserverSequence = [
        _item(
            VerifyingObserverName=study.reading.dicom,
            VerifyingOrganization=study.institution[0],
            VerificationDateTime=f"{dicom_date(study.date)}183000",
            VerifyingObserverIdentificationCodeSequence=[],
        )
    ]
    ds.CurrentRequestedProcedureEvidenceSequence = [
        _item(
            StudyInstanceUID=study.uid,
            ReferencedSeriesSequence=[
                _item(SeriesInstanceUID=ct.uid, ReferencedSOPSequence=_sop_refs(ct_uids))
            ],
        )
    ]
    finding = (
        f"Scanner thoracique de {who.person.natural} (né(e) le {french_date(who.birth_date)}, "
        f"IPP {who.patient_id}) du {french_date(study.date)} : nodule de 6 mm du lobe supérieur "
        f"droit. Contrôle conseillé. Dr {study.reading.natural}, tél. {who.phones[0]}."
    )
    ds.ContentSequence = [
        _item(
            RelationshipType="HAS OBS CONTEXT",
            ValueType="PNAME",
            ConceptNameCodeSequence=_concept("121029", "DCM", "Subject Name"),
            PersonName=who.person.dicom,
        ),
        _item(
            RelationshipType="HAS OBS CONTEXT",
            ValueType="PNAME",
            ConceptNameCodeSequence=_concept("121008", "DCM", "Person Observer Name"),
            PersonName=study.reading.dicom,
        ),
        _item(
            RelationshipType="HAS OBS CONTEXT",
            ValueType="DATE",
            ConceptNameCodeSequence=_concept("121031", "DCM", "Subject Birth Date"),
            Date=dicom_date(who.birth_date),
        ),
        _item(
            RelationshipType="CONTAINS",
            ValueType="TEXT",
            ConceptNameCodeSequence=_concept("121071", "DCM", "Finding"),
            TextValue=finding,
        ),
        *[
            _item(
                RelationshipType="CONTAINS",
                ValueType="IMAGE",
                ConceptNameCodeSequence=_concept("121080", "DCM", "Best illustration of finding"),
                ReferencedSOPSequence=_sop_refs([uid]),
            )
            for uid in ct_uids[:2]
        ],
    ]
    return ds


def _contour(z: float, radius: float, points: int = 12) -> list[float]:
    data: list[float] = []
    for k in range(points):
        angle = 2 * math.pi * k / points
        data += [
            round(40 + radius * math.cos(angle), 2),
            round(10 + radius * math.sin(angle), 2),
            z,
        ]
    return data


def rtstruct_instance(
    series: SeriesPlan, sop_uid: str, ct: SeriesPlan, ct_uids: list[str], ct_z: list[float]
) -> Dataset:
    study = series.study
    who = study.identity
    ds = base_dataset(RTStructureSetStorage, sop_uid, series, 1)
    ds.FrameOfReferenceUID = ct.frame_of_reference
    ds.StructureSetLabel = "THORAX"
    ds.StructureSetName = f"RT {who.person.family.upper()}"
    ds.StructureSetDescription = (
        f"Contours de {who.person.natural} validés par Dr {study.reading.natural}"
    )
    ds.StructureSetDate = dicom_date(study.date)
    ds.StructureSetTime = study.time
    ds.ReferencedFrameOfReferenceSequence = [
        _item(
            FrameOfReferenceUID=ct.frame_of_reference,
            RTReferencedStudySequence=[
                _item(
                    ReferencedSOPClassUID=DETACHED_STUDY,
                    ReferencedSOPInstanceUID=study.uid,
                    RTReferencedSeriesSequence=[
                        _item(SeriesInstanceUID=ct.uid, ContourImageSequence=_sop_refs(ct_uids))
                    ],
                )
            ],
        )
    ]
    ds.StructureSetROISequence = [
        _item(
            ROINumber=1,
            ReferencedFrameOfReferenceUID=ct.frame_of_reference,
            ROIName="GTV",
            ROIGenerationAlgorithm="MANUAL",
        )
    ]
    contoured = list(zip(ct_uids, ct_z, strict=True))[1:-1] or list(zip(ct_uids, ct_z, strict=True))
    ds.ROIContourSequence = [
        _item(
            ReferencedROINumber=1,
            ROIDisplayColor=[255, 0, 0],
            ContourSequence=[
                _item(
                    ContourImageSequence=_sop_refs([uid]),
                    ContourGeometricType="CLOSED_PLANAR",
                    NumberOfContourPoints=12,
                    ContourData=_contour(z, 15.0),
                )
                for uid, z in contoured
            ],
        )
    ]
    ds.RTROIObservationsSequence = [
        _item(
            ObservationNumber=1,
            ReferencedROINumber=1,
            RTROIInterpretedType="GTV",
            ROIInterpreter=study.reading.dicom,
        )
    ]
    ds.ApprovalStatus = "APPROVED"
    ds.ReviewDate = dicom_date(study.date)
    ds.ReviewTime = study.time
    ds.ReviewerName = study.reading.dicom
    return ds
