"""The modules every generated instance shares: patient, study, series, equipment, private."""

from __future__ import annotations

import datetime as dt

from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import UID, ExplicitVRLittleEndian

from pacsguard.sample.identities import Identity, dicom_date, french_date
from pacsguard.sample.plan import IMPLEMENTATION_NAME, IMPLEMENTATION_UID, SeriesPlan, StudyPlan

DETACHED_PATIENT = "1.2.840.10008.3.1.2.1.1"
DETACHED_STUDY = "1.2.840.10008.3.1.2.3.1"
MANUFACTURERS = {"CT": "ACME Medical", "MR": "Nordlys MR", "US": "Sonora", "OT": "ScreenCap"}


def _item(**elements: object) -> Dataset:
    item = Dataset()
    for keyword, value in elements.items():
        setattr(item, keyword, value)
    return item


def _code(value: str, scheme: str, meaning: str) -> Dataset:
    return _item(CodeValue=value, CodingSchemeDesignator=scheme, CodeMeaning=meaning)


def title(identity: Identity) -> str:
    return "Mme" if identity.sex == "F" else "M."


def new_dataset(sop_class: str, sop_uid: str) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = UID(sop_class)
    meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = UID(IMPLEMENTATION_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_NAME
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    return ds


def add_patient(ds: Dataset, study: StudyPlan) -> None:
    who = study.identity
    ds.PatientName = who.person.dicom
    ds.PatientID = who.patient_id
    ds.IssuerOfPatientID = "IPP"
    ds.PatientBirthDate = dicom_date(who.birth_date)
    ds.PatientSex = who.sex
    ds.PatientAge = who.age_at(study.date)
    ds.PatientSize = "1.72" if who.sex == "M" else "1.63"
    ds.PatientWeight = "74" if who.sex == "M" else "58"
    ds.PatientAddress = who.address
    ds.PatientTelephoneNumbers = list(who.phones)
    ds.OtherPatientNames = who.other_name.dicom
    ds.OtherPatientIDsSequence = [
        _item(PatientID=who.other_ids[0], IssuerOfPatientID="NIP", TypeOfPatientID="TEXT"),
        _item(PatientID=who.other_ids[1], IssuerOfPatientID="MRN", TypeOfPatientID="TEXT"),
    ]
    ds.PatientComments = (
        f"Contact {who.email} / {who.phones[1]}. NIR {who.nir}. Domicile : {who.address}."
    )
    ds.AdditionalPatientHistory = (
        f"{title(who)} {who.person.family} ({who.person.natural}), né(e) le "
        f"{french_date(who.birth_date)}, adressé(e) par Dr {study.referring.natural}. "
        f"Joignable au {who.phone_international}."
    )
    ds.ReferencedPatientSequence = [
        _item(ReferencedSOPClassUID=DETACHED_PATIENT, ReferencedSOPInstanceUID=study.patient_uid)
    ]


def add_study(ds: Dataset, study: StudyPlan) -> None:
    who, proc = study.identity, study.procedure
    ds.StudyInstanceUID = study.uid
    ds.StudyDate = dicom_date(study.date)
    ds.StudyTime = study.time
    ds.AccessionNumber = study.accession
    ds.StudyID = study.study_id
    ds.StudyDescription = study.description
    ds.ReferringPhysicianName = study.referring.dicom
    ds.NameOfPhysiciansReadingStudy = study.reading.dicom
    ds.RequestingPhysician = study.referring.dicom
    ds.ProcedureCodeSequence = [_code(proc.code, "CCAM", proc.meaning)]
    ds.RequestedProcedureCodeSequence = [_code(proc.code, "CCAM", proc.meaning)]
    requested = f"{proc.description} {who.person.family.upper()} {french_date(study.date)}"
    ds.RequestedProcedureDescription = requested
    ds.PerformedProcedureStepStartDate = dicom_date(study.date)
    ds.PerformedProcedureStepStartTime = study.time
    ds.PerformedProcedureStepID = f"PPS{study.accession[2:]}"
    ds.PerformedProcedureStepDescription = proc.meaning
    ds.RequestAttributesSequence = [
        _item(
            RequestedProcedureID=f"RP{study.accession[2:]}",
            RequestedProcedureDescription=requested,
            RequestedProcedureCodeSequence=[_code(proc.code, "CCAM", proc.meaning)],
            ScheduledProcedureStepID=f"SPS{study.accession[2:]}",
            ScheduledProcedureStepDescription=f"{proc.meaning} ({who.person.natural})",
            ScheduledProcedureStepStartDate=dicom_date(study.date),
            AccessionNumber=study.accession,
            StudyInstanceUID=study.uid,
            ReasonForTheRequestedProcedure=f"Bilan {who.person.natural}, NIR {who.nir_spaced}",
        )
    ]
    ds.ReferencedStudySequence = [
        _item(ReferencedSOPClassUID=DETACHED_STUDY, ReferencedSOPInstanceUID=study.prior_uid)
    ]


def add_series(ds: Dataset, series: SeriesPlan) -> None:
    study = series.study
    ds.Modality = series.modality
    ds.SeriesInstanceUID = series.uid
    ds.SeriesNumber = series.number
    ds.SeriesDate = dicom_date(study.date)
    ds.SeriesTime = series.time
    ds.SeriesDescription = series.description
    ds.BodyPartExamined = study.procedure.body_part
    ds.PerformingPhysicianName = study.performing.dicom
    ds.OperatorsName = study.operator.dicom
    ds.Manufacturer = MANUFACTURERS.get(series.modality, "ACME Medical")
    ds.ManufacturerModelName = f"{series.modality} Vision 3"
    ds.SoftwareVersions = "3.2.1"
    ds.InstitutionName = study.institution[0]
    ds.InstitutionAddress = study.institution[1]
    ds.InstitutionalDepartmentName = "Imagerie médicale"
    ds.StationName = study.station
    ds.DeviceSerialNumber = study.serial


def add_instance(ds: Dataset, series: SeriesPlan, number: int) -> None:
    study = series.study
    day = dicom_date(study.date)
    stamp = dt.datetime.strptime(day + series.time, "%Y%m%d%H%M%S") + dt.timedelta(seconds=number)
    ds.InstanceNumber = number
    ds.InstanceCreationDate = day
    ds.InstanceCreationTime = stamp.strftime("%H%M%S")
    ds.ContentDate = day
    ds.ContentTime = stamp.strftime("%H%M%S")
    ds.AcquisitionDate = day
    ds.AcquisitionTime = stamp.strftime("%H%M%S")
    ds.AcquisitionDateTime = stamp.strftime("%Y%m%d%H%M%S.000000")
    who = study.identity
    ds.ImageComments = (
        f"{who.person.natural} né(e) le {french_date(who.birth_date)} - NIR {who.nir_spaced} "
        f"- tél. {who.phone_international} - examen du {french_date(study.date)}"
    )


def add_private(ds: Dataset, study: StudyPlan) -> None:
    """One block leaking identifiers (text and a nested SQ), one holding harmless numbers."""
    who = study.identity
    leaky = ds.private_block(0x0009, "ACME_CT 1.0", create=True)
    leaky.add_new(0x01, "LO", who.person.dicom)
    leaky.add_new(
        0x02,
        "LT",
        f"Pat: {who.person.natural}, IPP {who.patient_id}, né(e) le {who.birth_date.isoformat()}",
    )
    nested = _item(PatientID=who.patient_id, PatientName=who.person.dicom)
    nested.AccessionNumber = study.accession
    inner = nested.private_block(0x0029, "ACME_CT 1.0", create=True)
    inner.add_new(0x10, "LO", who.nir)
    leaky.add_new(0x03, "SQ", [nested])
    harmless = ds.private_block(0x0019, "ACME_GEOM 2.1", create=True)
    harmless.add_new(0x01, "DS", "0.625")
    harmless.add_new(0x02, "US", 512)
    harmless.add_new(0x03, "FD", 1.5)
    harmless.add_new(0x04, "SL", -12)


def base_dataset(sop_class: str, sop_uid: str, series: SeriesPlan, number: int) -> Dataset:
    ds = new_dataset(sop_class, sop_uid)
    add_patient(ds, series.study)
    add_study(ds, series.study)
    add_series(ds, series)
    add_instance(ds, series, number)
    add_private(ds, series.study)
    return ds
