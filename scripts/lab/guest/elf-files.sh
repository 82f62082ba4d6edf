# lab_elf_files ROOT: the ELF files under ROOT's bin, lib, lib64, usr/bin and usr/lib, sorted —
# what the lab's exec allowlist lists (sourced by scripts/lab/build.sh on the host and by the
# exec-allowlist scenario in the guest, so both compute the same set).
lab_elf_files() {
  local d f
  for d in bin lib lib64 usr/bin usr/lib; do
    if [ -d "$1/$d" ]; then find "$1/$d" -type f; fi
  done | sort | while read -r f; do
    if [ "$(head -c 4 "$f" | tail -c 3)" = ELF ]; then echo "$f"; fi
  done
}
