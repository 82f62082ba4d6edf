// SPDX-License-Identifier: GPL-2.0
// keyward exec allowlist: BPF LSM programs that refuse to run code from any file whose SHA-256
// (from IMA) is not in the `kw_allowed` map, that keep other BPF users away from the maps
// the agent's statements are read from, and that keep every other process out of the agent's
// memory (its statement key). Layout of the maps is shared with agent.c; what each hook
// covers and what it does not is in docs/allowlist-state.md ("What the kernel hook covers").
// GPL is required: bpf_ima_file_hash is GPL-only.
#include "vmlinux.h"
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

#define EPERM 1
#define KW_MODE_OFF 0     /* not configured yet: allow, count nothing */
#define KW_MODE_ENFORCE 1 /* docs/allowlist-state.md: mode 1 */
#define KW_MODE_AUDIT 2   /* docs/allowlist-state.md: mode 2 */
#define KW_HASH_ALGO_SHA256 4 /* enum hash_algo HASH_ALGO_SHA256 (include/uapi/linux/hash_info.h) */
#define KW_MAX_ENTRIES 65536
#define KW_MAX_CGROUPS 16384
#define KW_CGROUP_OVERFLOW 0 /* denials_by_cgroup key for denials whose cgroup found the map full */
#define KW_PROT_WRITE 0x2
#define KW_PROT_EXEC 0x4
#define KW_VM_EXEC 0x4
#define KW_FMODE_WRITE 0x2
#define KW_NR_MAPS 4

char LICENSE[] SEC("license") = "GPL";

struct kw_digest {
	__u8 b[32];
};

/* Written by the agent (syscall) before the maps are frozen and the programs attached. */
struct kw_config {
	__u32 mode;
	/* tgid of the agent that loaded the programs: the only process that may reach its
	 * memory (keyward_protect_agent). */
	__u32 agent_tgid;
	/* The agent's executable (inode number, kernel dev_t): the only program that may open
	 * these maps once loaded (see kw_bpf_map). */
	__u64 agent_ino;
	__u64 agent_dev;
	/* Ids of kw_allowed, kw_config, kw_denials, denials_by_cgroup. */
	__u32 map_ids[KW_NR_MAPS];
};

/* Allowed SHA-256 file digests; value unused (1). Read-only to every BPF program. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KW_MAX_ENTRIES);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__type(key, struct kw_digest);
	__type(value, __u8);
} kw_allowed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(map_flags, BPF_F_RDONLY_PROG);
	__type(key, __u32);
	__type(value, struct kw_config);
} kw_config SEC(".maps");

/* [0] = host-wide denials (enforce) or would-be denials (audit) since load; atomic add.
 * This program writes it, so it cannot be BPF_F_RDONLY_PROG: kw_bpf_map keeps every other
 * program from obtaining it (a BPF program can only use a map it holds a descriptor of). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} kw_denials SEC(".maps");

/* Denials per cgroup v2 id (bpf_get_current_cgroup_id), protected as kw_denials. Key 0
 * (no cgroup has id 0; the agent inserts it) counts denials that found the map full. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, KW_MAX_CGROUPS);
	__type(key, __u64);
	__type(value, __u64);
} denials_by_cgroup SEC(".maps");

static __always_inline struct kw_config *kw_cfg(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&kw_config, &zero);
}

/* Counts one refusal host-wide and for the current cgroup; the verdict for `mode`. */
static __always_inline int refuse(__u32 mode)
{
	__u32 zero = 0;
	__u64 cg = bpf_get_current_cgroup_id(), one = 1, overflow = KW_CGROUP_OVERFLOW, *count;

	count = bpf_map_lookup_elem(&kw_denials, &zero);
	if (count)
		__sync_fetch_and_add(count, 1);
	count = bpf_map_lookup_elem(&denials_by_cgroup, &cg);
	if (!count && bpf_map_update_elem(&denials_by_cgroup, &cg, &one, BPF_NOEXIST) == 0)
		goto out;
	if (!count) /* inserted meanwhile by another CPU, or the map is full */
		count = bpf_map_lookup_elem(&denials_by_cgroup, &cg);
	if (!count)
		count = bpf_map_lookup_elem(&denials_by_cgroup, &overflow);
	if (count)
		__sync_fetch_and_add(count, 1);
out:
	return mode == KW_MODE_AUDIT ? 0 : -EPERM; /* unknown mode: fail closed */
}

/* Filesystems whose content IMA can vouch for: local ones where every change goes through
 * this kernel, so IMA's cached hash is dropped when a writer closes the file. Remote and
 * userspace filesystems (NFS, CIFS, 9p, FUSE and virtiofs, Ceph) can change a file behind
 * the kernel's back, and overlayfs before 6.5 did not re-measure a changed upper file. */
static __always_inline int fs_vouched(struct file *file)
{
	switch (BPF_CORE_READ(file, f_inode, i_sb, s_magic)) {
	case 0xEF53:     /* ext2/3/4 */
	case 0x58465342: /* xfs */
	case 0x9123683E: /* btrfs */
	case 0x01021994: /* tmpfs (also the initramfs rootfs and memfd) */
	case 0x858458f6: /* ramfs */
	case 0x73717368: /* squashfs (read-only) */
	case 0xE0F5E1E2: /* erofs (read-only) */
		return 1;
	}
	return 0;
}

/* The file's content is on the allowlist and cannot change while the hash is used: on a
 * vouched filesystem, with no open writer (a memfd's own descriptor is one), and a SHA-256
 * from IMA. A file IMA cannot hash (error) has no digest to match, so it is unlisted. */
static __always_inline int file_listed(struct file *file)
{
	__u8 hash[64] = {};

	if (!fs_vouched(file) || BPF_CORE_READ(file, f_inode, i_writecount.counter) > 0)
		return 0;
	return bpf_ima_file_hash(file, hash, sizeof(hash)) == KW_HASH_ALGO_SHA256 &&
	       bpf_map_lookup_elem(&kw_allowed, hash) != NULL;
}

/* The kernel mapping the binary being exec'd (binfmt_elf, during execve, after exe_file was
 * set to it): bprm_check_security judged that very file already; judging it again would count
 * every would-be denial twice in audit mode. The ELF interpreter is not the exe: checked. */
static __always_inline int is_exec_image(struct file *file)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return BPF_CORE_READ_BITFIELD_PROBED(task, in_execve) &&
	       BPF_CORE_READ(file, f_inode) == BPF_CORE_READ(task, mm, exe_file, f_inode);
}

/* ---- exec allowlist hooks --------------------------------------------------------------- */

SEC("lsm.s/bprm_check_security")
int BPF_PROG(keyward_exec_allowlist, struct linux_binprm *bprm, int ret)
{
	struct kw_config *c;

	if (ret != 0)
		return ret; /* an earlier LSM already refused */
	c = kw_cfg();
	if (!c || c->mode == KW_MODE_OFF)
		return 0;
	return file_listed(bprm->file) ? 0 : refuse(c->mode);
}

/* Executable file mappings: the ELF interpreter and every shared library (ld.so maps them,
 * LD_PRELOAD and dlopen included), and memfd code. Anonymous executable memory is allowed:
 * V8 and other JITs need it, and a listed program that generates code is an interpreter
 * (docs/allowlist-state.md). A writable and executable file mapping is refused. */
SEC("lsm.s/mmap_file")
int BPF_PROG(keyward_mmap_file, struct file *file, unsigned long reqprot, unsigned long prot,
	     unsigned long flags, int ret)
{
	struct kw_config *c;

	if (ret != 0)
		return ret;
	if (!(prot & KW_PROT_EXEC) || !file)
		return 0;
	c = kw_cfg();
	if (!c || c->mode == KW_MODE_OFF)
		return 0;
	if (prot & KW_PROT_WRITE)
		return refuse(c->mode);
	if (is_exec_image(file))
		return 0;
	return file_listed(file) ? 0 : refuse(c->mode);
}

/* mprotect adding execute to a file mapping: allowed only where mmap_file already checked
 * execute (VM_EXEC), never writable at the same time, and not over privately modified pages
 * (anon_vma: copy-on-write copies that are no longer the file's content). */
SEC("lsm/file_mprotect")
int BPF_PROG(keyward_file_mprotect, struct vm_area_struct *vma, unsigned long reqprot,
	     unsigned long prot, int ret)
{
	struct kw_config *c;

	if (ret != 0)
		return ret;
	if (!(prot & KW_PROT_EXEC) || !BPF_CORE_READ(vma, vm_file))
		return 0;
	c = kw_cfg();
	if (!c || c->mode == KW_MODE_OFF)
		return 0;
	if ((prot & KW_PROT_WRITE) || !(BPF_CORE_READ(vma, vm_flags) & KW_VM_EXEC) ||
	    BPF_CORE_READ(vma, anon_vma))
		return refuse(c->mode);
	return 0;
}

/* ---- protection of this program's own maps (kw_bpf_map) ---------------------------------
 * BPF_MAP_FREEZE stops syscall writes only; a BPF program that holds a descriptor of a map
 * can write it (an array of maps, a map iterator, a socket filter run by test_run). Every
 * descriptor is created through security_bpf_map (map creation, BPF_OBJ_GET of a pin,
 * BPF_MAP_GET_FD_BY_ID), so once configured no process but the agent's executable gets one,
 * and never a writable one. Independent of mode: audit mode's counts must hold as well. */
SEC("lsm/bpf_map")
int BPF_PROG(keyward_bpf_map, struct bpf_map *map, fmode_t fmode, int ret)
{
	struct kw_config *c;
	struct file *exe;
	__u32 id;
	int ours = 0;

	if (ret != 0)
		return ret;
	c = kw_cfg();
	if (!c || c->mode == KW_MODE_OFF)
		return 0;
	id = BPF_CORE_READ(map, id);
	for (int i = 0; i < KW_NR_MAPS; i++)
		if (c->map_ids[i] == id)
			ours = 1;
	if (!ours)
		return 0;
	if (fmode & KW_FMODE_WRITE)
		return -EPERM;
	exe = BPF_CORE_READ(bpf_get_current_task_btf(), mm, exe_file);
	if (!exe || BPF_CORE_READ(exe, f_inode, i_ino) != c->agent_ino ||
	    BPF_CORE_READ(exe, f_inode, i_sb, s_dev) != c->agent_dev)
		return -EPERM;
	return 0;
}
/* ---- end of map protection ---------------------------------------------------------------- */

/* ---- protecting the agent's statement key (docs/allowlist-state.md) ----------------------
 * The agent signs statements with a key that lives only in its memory. Every way into another
 * process's memory (PTRACE_ATTACH, /proc/<pid>/mem and /maps, process_vm_readv/writev) goes
 * through ptrace_may_access() and so this hook: only the agent itself may reach the agent. */
SEC("lsm/ptrace_access_check")
int BPF_PROG(keyward_protect_agent, struct task_struct *child, unsigned int mode, int ret)
{
	struct kw_config *c;

	if (ret != 0)
		return ret;
	c = kw_cfg();
	if (!c || c->agent_tgid == 0 || BPF_CORE_READ(child, tgid) != (int)c->agent_tgid)
		return 0;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) == c->agent_tgid)
		return 0;
	return -EPERM;
}
