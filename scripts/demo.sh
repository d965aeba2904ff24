#!/usr/bin/env bash
# `make demo`: the main job end to end on generated sample data.
set -euo pipefail
out=${1:-demo-output}
pg=.venv/bin/pacsguard
rm -rf "$out" "$out".*
mkdir -p "$out"
echo "== 1. generate a synthetic corpus with fake identifiers everywhere"
$pg sample "$out/sample" --seed 1 --patients 4
echo "== 2. create a project key (mode 0600) and de-identify"
$pg key new "$out/project.key"
$pg deid "$out/sample/dicom" "$out/deid" --key "$out/project.key" \
  --option retain-long-modified-dates --option clean-descriptors \
  --option clean-structured-content --option clean-pixel-data --verify \
  --mapping-out "$out/mapping.csv" || status=$?
if [[ ${status:-0} -eq 1 ]]; then echo "(some inputs were quarantined, see above)"; fi
echo "== 3. verify: prove the output holds no residual identifier (headers and pixels by OCR)"
.venv/bin/pacsguard verify "$out/deid" --json "$out/verify.json" --html "$out/verify.html"
echo "== 4. pack for a named recipient (age format), then open it as the recipient would"
recipient=$($pg key new-identity "$out/recipient.key" | grep -o 'age1[0-9a-z]*' | head -n1)
$pg pack "$out/deid" "$out/package.age" --to "$recipient"
$pg unpack "$out/package.age" "$out/received" --identity "$out/recipient.key"
if command -v age >/dev/null; then
  mkdir -p "$out/received-with-age"
  age -d -i "$out/recipient.key" "$out/package.age" | tar x -C "$out/received-with-age"
  echo "   also opened with the standard tools: age -d | tar x"
fi
echo
echo "Look at:"
echo "  $out/sample/dicom               the synthetic inputs (answer key: $out/sample/answer-key.json)"
echo "  $out/deid                       the de-identified tree (patient/study/series/instance)"
echo "  $out/deid/pacsguard-deid.json   the manifest that travels with the output"
echo "  $out/deid.pacsguard/            the local journal, manifest and quarantine (never shipped)"
echo "  $out/mapping.csv                the re-identification mapping (mode 0600, keep it apart)"
echo "  $out/verify.html                the verifier's report (no finding: nothing identifying left)"
echo "  $out/package.age                the encrypted package; $out/received its checked contents"
