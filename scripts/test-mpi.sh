#!/usr/bin/env bash
# Data-parallel checks under mpirun with 2 ranks on this machine: pretraining and a LinChain
# fine-tune give the same loss trajectory (--metrics JSONL) as one process with the same
# global batch; rank 0 alone writes; a 2-rank resume continues bit for bit; a batch the
# ranks cannot split is a clear error; a rank killed mid-run ends the job with an error
# instead of a hang. Every mpirun runs under a timeout, so a hang fails the test.
# Prints "mpi: N passed, M failed"; exit status non-zero on any failure. Skips (exit 0,
# "mpi: 0 passed, 0 failed, 1 skipped (why)") when the tools were built without MPI (make
# MPI=0) or mpirun is missing; under CI=true a missing mpirun fails instead.
# Usage: scripts/test-mpi.sh [BIN_DIR]   (default build/bin)
set -uo pipefail
bin=${1:-build/bin}

# ldd's whole output is read first: `ldd | grep -q` under pipefail fails at random when grep
# exits early and ldd gets SIGPIPE.
libs=$([ -x "$bin/train" ] && ldd "$bin/train" 2>/dev/null)
if [[ $libs != *libmpi* ]]; then
  echo "mpi: 0 passed, 0 failed, 1 skipped ($bin/train missing or built without MPI)"
  exit 0
fi
if ! command -v mpirun >/dev/null 2>&1; then
  if [ "${CI:-}" = true ]; then
    echo "mpi: 0 passed, 1 failed (CI=true and mpirun not installed; scripts/install-deps.sh installs openmpi-bin)"
    exit 1
  fi
  echo "mpi: 0 passed, 0 failed, 1 skipped (mpirun not installed; scripts/install-deps.sh installs openmpi-bin)"
  exit 0
fi

export OMP_NUM_THREADS=1  # one thread per rank: 2 ranks on 2 cores
mpi=(mpirun --allow-run-as-root --oversubscribe -np 2 -x OMP_NUM_THREADS)
tmp=$(mktemp -d)
bg=""
cleanup() {
  [ -n "$bg" ] && kill "$bg" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
passed=0 failed=0
ok() { echo "  ok    $1"; passed=$((passed + 1)); }
bad() { echo "  FAIL  $1"; failed=$((failed + 1)); }

# compare A.jsonl B.jsonl [first_step]: the loss, grad_norm and val_loss of every step
# agree within 1e-6 relative; prints the largest difference and whether all are bitwise.
compare() {
  awk -v first="${3:-1}" '
    function field(line, key,   m) {
      if (match(line, "\"" key "\":[^,}]*")) return substr(line, RSTART + length(key) + 3, RLENGTH - length(key) - 3)
      return ""
    }
    FNR == NR { if (field($0, "step") + 0 >= first) a[++na] = $0; next }
    { if (field($0, "step") + 0 >= first) b[++nb] = $0 }
    END {
      if (na == 0 || na != nb) { printf "rows differ: %d vs %d", na, nb; exit 1 }
      worst = 0; bitwise = 1; split("loss grad_norm val_loss lr", keys, " ")
      for (i = 1; i <= na; i++)
        for (k = 1; k <= 4; k++) {
          x = field(a[i], keys[k]); y = field(b[i], keys[k])
          if ((x == "") != (y == "")) { printf "step row %d: %s in one file only", i, keys[k]; exit 1 }
          if (x == "") continue
          if (x != y) bitwise = 0
          d = x - y; if (d < 0) d = -d; s = (x < 0 ? -x : x); r = s > 0 ? d / s : d
          if (r > worst) worst = r
        }
      printf "%d steps, max rel. diff %.3g, %s", na, worst, bitwise ? "bitwise identical" : "not bitwise"
      exit worst <= 1e-6 ? 0 : 1
    }' "$1" "$2"
}

check_compare() {  # name a b [first_step]
  local msg
  if msg=$(compare "$2" "$3" "${4:-1}"); then ok "$1: $msg"; else bad "$1: $msg"; fi
}

echo "== mpi: 2 ranks vs 1 process ($(mpirun --version 2>/dev/null | head -1))"
model_args=(--arith add --dim 32 --layers 2 --heads 4 --seq 32 --eval-batches 2)
train_args=("${model_args[@]}" --batch 8 --steps 10 --eval-every 5)
"$bin/train" "${train_args[@]}" --metrics "$tmp/t1.jsonl" --out "$tmp/base.safetensors" 2>"$tmp/t1.err" ||
  { bad "train, 1 process"; cat "$tmp/t1.err"; }
timeout 60 "${mpi[@]}" "$bin/train" "${train_args[@]}" --metrics "$tmp/t2.jsonl" --out "$tmp/base2.safetensors" \
  >"$tmp/t2.out" 2>"$tmp/t2.err" || { bad "train, 2 ranks (exit $?)"; cat "$tmp/t2.err"; }
check_compare "pretraining loss trajectory, 2 ranks = 1 process" "$tmp/t1.jsonl" "$tmp/t2.jsonl"
rows=$(wc -l <"$tmp/t2.jsonl" 2>/dev/null || echo 0)
heads=$(grep -c 'trainable parameters' "$tmp/t2.err")
# 10 steps and the step-0 validation row (before training), written once.
if [ "$rows" -eq 11 ] && [ "$heads" -eq 1 ] && grep -q 'data parallel over 2 processes' "$tmp/t2.err"; then
  ok "rank 0 alone logs and writes metrics ($rows rows, $heads header)"
else
  bad "rank 0 alone logs and writes metrics ($rows rows, $heads headers)"
fi

ft_base=(--model "$tmp/base.safetensors" --adapter linchain --rank 4 --chain 3 --arith add --seq 32 --batch 8
  --lr 3e-3 --eval-every 5 --eval-batches 2)
ft_args=("${ft_base[@]}" --steps 10)
"$bin/finetune" "${ft_args[@]}" --metrics "$tmp/f1.jsonl" >/dev/null 2>"$tmp/f1.err" ||
  { bad "finetune, 1 process"; cat "$tmp/f1.err"; }
timeout 60 "${mpi[@]}" "$bin/finetune" "${ft_args[@]}" --metrics "$tmp/f2.jsonl" --out "$tmp/a2.safetensors" \
  >"$tmp/f2.out" 2>"$tmp/f2.err" || { bad "finetune, 2 ranks (exit $?)"; cat "$tmp/f2.err"; }
check_compare "LinChain fine-tune loss trajectory, 2 ranks = 1 process" "$tmp/f1.jsonl" "$tmp/f2.jsonl"
if [ "$(grep -c '"adapter"' "$tmp/f2.out")" -eq 1 ] && [ -s "$tmp/a2.safetensors" ]; then
  ok "finetune: one summary line and the adapter file from rank 0"
else
  bad "finetune: one summary line and the adapter file from rank 0"
fi

echo "== mpi: resume with 2 ranks"
res_args=("${ft_base[@]}" --min-lr-frac 1)  # constant lr: the schedule does not depend on --steps
timeout 60 "${mpi[@]}" "$bin/finetune" "${res_args[@]}" --steps 10 --metrics "$tmp/r_full.jsonl" >/dev/null 2>"$tmp/r1.err" &&
  timeout 60 "${mpi[@]}" "$bin/finetune" "${res_args[@]}" --steps 5 --checkpoint "$tmp/ck.safetensors" \
    >/dev/null 2>"$tmp/r2.err" &&
  timeout 60 "${mpi[@]}" "$bin/finetune" "${res_args[@]}" --steps 10 --resume "$tmp/ck.safetensors" \
    --metrics "$tmp/r_res.jsonl" >/dev/null 2>"$tmp/r3.err"
if [ $? -ne 0 ]; then
  bad "resume runs"; cat "$tmp"/r*.err
elif msg=$(compare "$tmp/r_full.jsonl" "$tmp/r_res.jsonl" 6) && grep -q 'bitwise identical' <<<"$msg"; then
  ok "2-rank run resumed at step 5 = uninterrupted 2-rank run: $msg"
else
  bad "2-rank run resumed at step 5 = uninterrupted 2-rank run: $msg"
fi

echo "== mpi: failures end the job"
start=$SECONDS
timeout 30 "${mpi[@]}" "$bin/train" "${model_args[@]}" --steps 10 --batch 7 >"$tmp/b.out" 2>"$tmp/b.err"
rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'not divisible by 2 processes' "$tmp/b.err"; then
  ok "--batch 7 on 2 ranks: exit $rc, '$(grep -m1 'not divisible' "$tmp/b.err")' ($((SECONDS - start)) s)"
else
  bad "--batch 7 on 2 ranks: exit $rc"; cat "$tmp/b.err"
fi

# Kill rank 1 (SIGKILL) once training is under way; mpirun must end the job with an error.
start=$SECONDS
timeout 30 "${mpi[@]}" "$bin/train" "${model_args[@]}" --batch 8 --steps 1000000 --eval-every 0 --metrics "$tmp/k.jsonl" \
  >"$tmp/k.out" 2>"$tmp/k.err" &
bg=$!
victim=""
for _ in $(seq 100); do  # up to 10 s for rank 1 to appear and rank 0 to log 3 steps
  if [ -z "$victim" ]; then
    for launcher in $(pgrep -P "$bg"); do
      for p in $(pgrep -P "$launcher"); do
        { tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null | grep -qx 'OMPI_COMM_WORLD_RANK=1' && victim=$p
      done
    done
  fi
  [ -n "$victim" ] && [ "$({ wc -l <"$tmp/k.jsonl"; } 2>/dev/null || echo 0)" -ge 3 ] && break
  sleep 0.1
done
if [ -z "$victim" ]; then
  bad "killed rank: could not find rank 1"
  kill "$bg" 2>/dev/null
  wait "$bg" 2>/dev/null
else
  steps_before=$(wc -l <"$tmp/k.jsonl")
  kill -9 "$victim"
  wait "$bg"
  rc=$?
  if [ $rc -ne 0 ] && [ $rc -ne 124 ] && grep -q 'exited on signal 9' "$tmp/k.err"; then
    ok "rank 1 killed after $steps_before steps: job ended, exit $rc, '$(grep -m1 -o 'process rank 1.*exited on signal 9[^.]*' "$tmp/k.err")' ($((SECONDS - start)) s)"
  else
    bad "rank 1 killed: exit $rc (124 = hung until the timeout)"; tail -5 "$tmp/k.err"
  fi
fi
bg=""

echo "== mpi: Ctrl-C (SIGINT to the process group) stops a 2-rank run cleanly"
# A terminal's Ctrl-C reaches mpirun and both ranks; the ranks agree in the step's all-reduce,
# rank 0 saves the checkpoint and --out, prints one line; both exit 130/143 (mpirun itself
# reports 1). Resuming from that checkpoint reproduces the uninterrupted run's losses bitwise.
int_args=("${ft_base[@]}" --min-lr-frac 1 --steps 1000000)
setsid "${mpi[@]}" "$bin/finetune" "${int_args[@]}" --checkpoint "$tmp/ick.safetensors" --out "$tmp/iad.safetensors" \
  --metrics "$tmp/i.jsonl" >/dev/null 2>"$tmp/i.err" &
bg=$!
for _ in $(seq 300); do [ "$({ wc -l <"$tmp/i.jsonl"; } 2>/dev/null || echo 0)" -ge 12 ] && break; sleep 0.1; done
kill -INT -- -"$bg"
for _ in $(seq 300); do kill -0 "$bg" 2>/dev/null || break; sleep 0.1; done
kill -0 "$bg" 2>/dev/null && { kill -KILL -- -"$bg"; bad "interrupted 2-rank run did not end"; }
wait "$bg" 2>/dev/null
bg=""
line=$(grep -m1 'interrupted by' "$tmp/i.err")
k=$(sed -n 's/.*after step \([0-9]*\) of.*/\1/p' <<<"$line")
if [ -n "$k" ] && [ -s "$tmp/ick.safetensors" ] && [ -s "$tmp/iad.safetensors" ] && ! ls "$tmp"/ick.safetensors.* >/dev/null 2>&1; then
  ok "SIGINT to 2 ranks: '$line'"
  stop=$((k + 3))
  timeout 60 "${mpi[@]}" "$bin/finetune" "${int_args[@]}" --stop-after "$stop" --metrics "$tmp/i_full.jsonl" >/dev/null 2>"$tmp/i1.err" &&
    timeout 60 "${mpi[@]}" "$bin/finetune" "${int_args[@]}" --stop-after "$stop" --resume "$tmp/ick.safetensors" \
      --metrics "$tmp/i_res.jsonl" >/dev/null 2>"$tmp/i2.err"
  if [ $? -ne 0 ]; then
    bad "resume after SIGINT"; cat "$tmp"/i1.err "$tmp"/i2.err
  elif msg=$(compare "$tmp/i_full.jsonl" "$tmp/i_res.jsonl" $((k + 1))) && grep -q 'bitwise identical' <<<"$msg"; then
    ok "2-rank run resumed after SIGINT at step $k = uninterrupted: $msg"
  else
    bad "2-rank run resumed after SIGINT at step $k = uninterrupted: $msg"
  fi
else
  bad "SIGINT to 2 ranks: no clean stop ('$line')"; tail -5 "$tmp/i.err"
fi

echo "mpi: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
