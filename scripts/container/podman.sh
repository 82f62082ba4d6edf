# Sourced by the container scripts: podman with the one configuration that runs containers in this
# sandbox (see README "Container image"): crun cannot set RLIMIT_NOFILE/NPROC here, so no default
# ulimits and the runc runtime; the host has hybrid cgroups (v1), so the cgroupfs manager.
KW_CONTAINERS_CONF=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/containers.conf
kw_podman() {
  CONTAINERS_CONF="$KW_CONTAINERS_CONF" podman --runtime runc --cgroup-manager cgroupfs "$@"
}
