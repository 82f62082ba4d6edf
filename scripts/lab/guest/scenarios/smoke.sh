# Smoke: the kernel facts the lab relies on (TPM device, BPF LSM, IMA, event log).
set -u
cat /sys/kernel/security/lsm > "$OUT/lsm"
ls /dev/tpm* > "$OUT/tpm-devices"
[ -r /sys/kernel/security/tpm0/binary_bios_measurements ] && cp /sys/kernel/security/tpm0/binary_bios_measurements "$OUT/eventlog.bin"
uname -r > "$OUT/uname"
ls -la /dev/virtio-ports/ /sys/class/virtio-ports/ > "$OUT/vports" 2>&1
if [ -x /usr/bin/node ]; then node -e 'console.log(process.version)' > "$OUT/node-version"; fi
tpm2_pcrread sha256:0,1,2,3,4,5,6,7,15 > "$OUT/pcrs.txt"
