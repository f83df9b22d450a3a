# Sourced by scripts/gpu_check.sh and scripts/gpu_book_check.sh: install the package over the
# machine's own PyTorch, offline where --wheels is given, and prove the PyTorch was kept.
#
# Needs ROOT (the checkout), PY (the interpreter) and WHEELS (a folder of wheels built for this
# machine's Python, or empty where pip may use the network); extra packages to install (papermill,
# ipykernel, ...) are passed as arguments: gpu_install papermill ipykernel
gpu_install() {
  local before after src=()
  local probe='from importlib.metadata import version as v; print(v("torch"), v("torchvision"))'
  before=$("$PY" -c "$probe" 2>/dev/null) || {
    echo "gpu_env: this Python has no PyTorch; install the machine's torch and torchvision first" >&2
    exit 2
  }
  [ -z "$WHEELS" ] || src=(--no-index --find-links "$WHEELS")
  local iso=()  # build the editable install with the machine's setuptools where it has one
  "$PY" -c "import setuptools" 2>/dev/null && iso=(--no-build-isolation)
  echo "installing bbam-lite (editable) ${*:+and $* }over torch/torchvision $before${WHEELS:+ from $WHEELS}"
  "$PY" -m pip install -q --disable-pip-version-check "${src[@]}" "${iso[@]}" -e "$ROOT" "$@"
  after=$("$PY" -c "$probe")
  if [ "$before" != "$after" ]; then
    echo "gpu_env: installing replaced torch/torchvision $before with $after" >&2
    exit 1
  fi
  echo "kept torch/torchvision $after"
}
