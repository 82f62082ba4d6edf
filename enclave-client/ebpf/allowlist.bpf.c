// SPDX-License-Identifier: GPL-2.0
// keyward exec allowlist: a sleepable BPF LSM program on bprm_check_security that
// refuses exec of any file whose SHA-256 (from IMA) is not in the `kw_allowed` map.
// Layout of the maps is shared with agent.c; see docs/allowlist-state.md for the
// state the agent measures. GPL is required: bpf_ima_file_hash is GPL-only.
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>

#define EPERM 1
#define KW_MODE_OFF 0     /* not configured yet: allow, count nothing */
#define KW_MODE_ENFORCE 1 /* docs/allowlist-state.md: mode 1 */
#define KW_MODE_AUDIT 2   /* docs/allowlist-state.md: mode 2 */
#define KW_HASH_ALGO_SHA256 4 /* enum hash_algo HASH_ALGO_SHA256 (include/uapi/linux/hash_info.h) */
#define KW_MAX_ENTRIES 65536

char LICENSE[] SEC("license") = "GPL";

struct kw_digest {
	__u8 b[32];
};

/* Allowed SHA-256 file digests; value unused (1). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KW_MAX_ENTRIES);
	__type(key, struct kw_digest);
	__type(value, __u8);
} kw_allowed SEC(".maps");

/* [0] = mode. Written by the agent before the program is attached. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} kw_config SEC(".maps");

/* [0] = denials (enforce) or would-be denials (audit) since load; atomic add. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kw_denials SEC(".maps");

SEC("lsm.s/bprm_check_security")
int BPF_PROG(keyward_exec_allowlist, struct linux_binprm *bprm, int ret)
{
	__u32 zero = 0;
	__u32 *mode;
	__u64 *count;
	__u8 hash[64] = {};
	long algo;

	if (ret != 0)
		return ret; /* an earlier LSM already refused */
	mode = bpf_map_lookup_elem(&kw_config, &zero);
	if (!mode || *mode == KW_MODE_OFF)
		return 0;

	/* Returns the hash algorithm id (not a length) or a negative error. A file IMA cannot
	 * hash (no policy, error) has no digest to match, so it is treated as unlisted. */
	algo = bpf_ima_file_hash(bprm->file, hash, sizeof(hash));
	if (algo == KW_HASH_ALGO_SHA256 && bpf_map_lookup_elem(&kw_allowed, hash))
		return 0;

	count = bpf_map_lookup_elem(&kw_denials, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	return *mode == KW_MODE_AUDIT ? 0 : -EPERM; /* unknown mode: fail closed */
}

/* ---- Protecting the agent's statement key (docs/allowlist-state.md) ----------------------
 * The agent signs statements with a key that lives only in its memory. Every way into another
 * process's memory — PTRACE_ATTACH, /proc/<pid>/mem and /maps, process_vm_readv/writev — goes
 * through ptrace_may_access() and so this hook: only the agent itself may reach the agent. */

/* [0] = tgid of the agent that loaded this program; 0 = none. Written before attach, frozen. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} kw_agent SEC(".maps");

SEC("lsm/ptrace_access_check")
int BPF_PROG(keyward_protect_agent, struct task_struct *child, unsigned int mode, int ret)
{
	__u32 zero = 0;
	__u32 *agent;

	if (ret != 0)
		return ret;
	agent = bpf_map_lookup_elem(&kw_agent, &zero);
	if (!agent || *agent == 0 || BPF_CORE_READ(child, tgid) != (int)*agent)
		return 0;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == *agent)
		return 0;
	return -EPERM;
}
