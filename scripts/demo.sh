#!/usr/bin/env bash
# `make demo`: the story of the seed, end to end on generated sample data, loopback only.
# A PACS that answers anyone is found and measured; then the research data manager's job:
# de-identify, verify, de-identify the clinical table, pack; then the recipient unpacks.
set -euo pipefail
out=${1:-demo-output}
bin=.venv/bin
pg=$bin/pacsguard
export TCP_NODELAY=1 # DCMTK/Orthanc peers without Nagle's delay (see docs/scan.md)
export XDG_DATA_HOME="$PWD/$out/state" # the demo's scan history stays in the demo folder
started=$SECONDS
rm -rf "$out" "$out".*
mkdir -p "$out"
step() { printf '\n\033[1m== %s\033[0m  (%ss)\n' "$1" "$((SECONDS - started))"; }

step "1. a synthetic hospital: 3 patients, their studies and their clinical table"
$pg sample "$out/sample" --seed 1 --patients 3

step "2. a PACS on this machine answers anyone, as hundreds do on the internet"
$bin/python -m pacsguard.lab.serve "$out/lab" "$out/sample" >"$out/lab.ready" &
lab=$!
trap 'kill $lab 2>/dev/null || true' EXIT
for _ in $(seq 600); do
  grep -q '^ready' "$out/lab.ready" 2>/dev/null && break
  kill -0 $lab 2>/dev/null || { echo "the loopback Orthanc did not start: see $out/lab/"; exit 1; }
  sleep 0.1
done
read -r _ dicom http <"$out/lab.ready"
dicom=${dicom#dicom=} http=${http#http=}
echo "   Orthanc (loaded with the sample) on 127.0.0.1, DICOM port $dicom, REST port $http"

step "3. the security officer scans it"
$pg scan 127.0.0.1 --ports "$dicom,$http" --html "$out/scan.html" --json "$out/scan.json"
$bin/python - "$out/scan.json" <<'PY'
import json, sys
findings = json.load(open(sys.argv[1]))["findings"]
worst = [f for f in findings if f["severity"] == "critical"]
patients = max((f["exposed"]["patients"] or 0 for f in worst), default=0)
print(f"   => critical: {patients} patients readable by anyone ({len(worst)} critical findings)")
PY
kill $lab && wait $lab 2>/dev/null || true
trap - EXIT
echo "   ...the server is switched off (the fix), and the officer checks again:"
$pg scan 127.0.0.1 --ports "$dicom,$http" -q
$pg scan diff

step "4. the data manager creates a project key and de-identifies the images"
$pg key new "$out/project.key"
status=0
$pg deid "$out/sample/dicom" "$out/deid" --key "$out/project.key" \
  --option retain-long-modified-dates --option clean-descriptors \
  --option clean-structured-content --option clean-pixel-data \
  --mapping-out "$out/mapping.csv" || status=$?
if [[ $status -eq 1 ]]; then echo "   (some inputs were quarantined, see above)"; fi
if [[ $status -gt 1 ]]; then exit $status; fi

step "5. verify: no residual identifier in headers, private tags or pixels (OCR)"
$pg verify "$out/deid" --mapping "$out/mapping.csv" --json "$out/verify.json" --html "$out/verify.html"

step "6. the clinical table of the same patients: classify, de-identify, measure the risk"
$pg tables inspect "$out/sample/clinical/export.csv" --policy-out "$out/policy.yaml" >/dev/null
echo "   draft policy: $out/policy.yaml (a person reviews it; the demo takes it as drafted)"
$pg tables deid "$out/sample/clinical/export.csv" "$out/tables" --key "$out/project.key" \
  --policy "$out/policy.yaml"
$pg tables risk "$out/tables/export.csv" --qi DDN --qi Sexe --qi CP --sensitive Diagnostic

step "7. pack for a named recipient (age format, signed manifest)"
recipient=$($pg key new-identity "$out/recipient.key")
$pg key new-signing-key "$out/sender.key" >/dev/null
$pg pack "$out/deid" "$out/package.age" --to "$recipient" --sign "$out/sender.key"

step "8. the AI researcher unpacks it (and could with age and tar alone)"
$pg unpack "$out/package.age" "$out/received" --identity "$out/recipient.key" \
  --verify-signer "$out/sender.key.pub"
mkdir -p "$out/received-with-age"
age -d -i "$out/recipient.key" "$out/package.age" | tar x -C "$out/received-with-age"
echo "   also opened with the standard tools: age -d -i recipient.key package.age | tar x"

echo
echo "Done in $((SECONDS - started)) s. Look at:"
echo "  $out/scan.html                 the scan report (severity cards, counts, per-product fixes)"
echo "  $out/sample/dicom              the synthetic inputs (answer key: $out/sample/answer-key.json)"
echo "  $out/deid                      the de-identified tree; $out/deid/pacsguard-deid.json travels with it"
echo "  $out/deid.pacsguard/           the local journal, manifest and quarantine (never shipped)"
echo "  $out/mapping.csv               the re-identification mapping (mode 0600, keep it apart)"
echo "  $out/verify.html               the verifier's report"
echo "  $out/tables/export.csv         the de-identified clinical table (joins the images by pseudonym)"
echo "  $out/package.age               the encrypted package; $out/received its checked contents"
