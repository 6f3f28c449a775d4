#!/bin/bash
# The bundled models' outputs on sample records, through `ecgcore infer`: the sha256 of every output file.
# Run it before and after a refactoring: the hashes must not change (issue 19). Usage: tools/bundled_outputs.sh OUT_DIR
set -e
out=$1; rm -rf $out; mkdir -p $out
M=$(python -c "import ecgcore, pathlib; print(pathlib.Path(ecgcore.__file__).parent / 'data' / 'mitdb')")
P=$(ls -d ${ECGCORE_DATA:-../shared/data}/ptbxl/records500/*/ | head -1)
P1=$(ls $P*.hea | head -2 | sed 's/\.hea$//')
for m in beats-aami segments-abnormal; do ecgcore infer $m $M/100 $M/119 $M/208 -o $out/$m.jsonl --no-progress --threads 2 >/dev/null; done
ecgcore infer denoiser $M/100 $M/119 -o $out/denoiser --no-progress --threads 2 >/dev/null
ecgcore infer heartid ${ECGCORE_DATA:-../shared/data}/ecgiddb/Person_01/rec_1 ${ECGCORE_DATA:-../shared/data}/ecgiddb/Person_02/rec_1 -o $out/heartid.jsonl --no-progress --threads 2 >/dev/null
ecgcore infer hubert-ptbxl-super $P1 -o $out/hubert.jsonl --no-progress --threads 2 >/dev/null
cd $out; for f in *.jsonl denoiser/*.npy; do echo "$(sha256sum $f | cut -c1-16) $f"; done
