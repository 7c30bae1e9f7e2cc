/* Process lifecycle on tracepoints only (no kprobes here): exec, exit with its code or fatal signal,
 * SIGKILL/SIGTERM (the signals in SIGNAL_MASK) sent by whom to whom, and the OOM killer's victims.
 *
 * Fed by: sched:sched_process_exec, syscalls:sys_enter_exit_group, signal:signal_generate,
 * signal:signal_deliver, sched:sched_process_exit, oom:mark_victim. Feeds: collectors/kernel.py
 * through the perf buffers `exits`, `signals`, `ooms` and the array `counters`.
 * Filtered here: a process that exits with code 0 and no signal is only counted (counters[1]); a
 * thread that is not its process's main thread is not reported; signals outside SIGNAL_MASK and
 * signals the kernel ignored are dropped. Reads only tracepoint fields and helpers (pid, comm, time):
 * no kernel struct, whose layout differs between kernels.
 * Which cgroup each process is in, kept here (`proc_cgroup`, by pid): a process that is exiting
 * shows `/` in /proc/<pid>/cgroup on a v1 hierarchy, so the collector cannot read it at the exit or
 * the OOM kill. cgroup:cgroup_attach_task records a move into a cgroup of the memory hierarchy
 * (MEMORY_ROOT, the hierarchy id /proc/cgroups gives; 0 on v2), sched:sched_process_fork hands the
 * parent's to the child, and the collector seeds the processes that existed before the load.
 * Compile-time flags (set by the collector from tracefs): SIGNAL_MASK, MEMORY_ROOT, HAVE_EXIT_GROUP,
 * HAVE_OOM_RSS, HAVE_CGROUP_ATTACH.
 */
#include <uapi/linux/ptrace.h>

#define COMM_LEN 16
#define FILE_LEN 128
#define CGROUP_LEN 256  /* a systemd-driver container's path is ~190 characters */
#define NOT_FATAL ((1ULL << 17) | (1ULL << 18) | (1ULL << 19) | (1ULL << 20) | (1ULL << 21) | (1ULL << 22) | \
                   (1ULL << 23) | (1ULL << 28))  /* CHLD CONT STOP TSTP TTIN TTOU URG WINCH: default is not death */

enum counter { C_EXECS, C_CLEAN_EXITS, C_REPORTED_EXITS, C_MAP_FULL, C_SIGNALS, C_OOMS, C_CONNECTS,
               C_CONNECT_FAILURES, C_COUNTERS };
BPF_ARRAY(counters, u64, 16);

static __always_inline void count(int which) {
    u64 *slot = counters.lookup(&which);
    if (slot) __sync_fetch_and_add(slot, 1);
}

struct file_name { char name[FILE_LEN]; };
struct status {           /* how a process is ending: the first of exit_group's code or a fatal signal */
    s32 code;             /* -1: not seen */
    s32 sig;              /* 0: none */
    u32 sender_pid;       /* who sent the signal in SIGNAL_MASK, 0: not seen */
    char sender_comm[COMM_LEN];
};
struct cgroup_path { char path[CGROUP_LEN]; };
BPF_TABLE("lru_hash", u32, struct file_name, exec_file, 16384);
BPF_TABLE("lru_hash", u32, struct cgroup_path, proc_cgroup, 16384);
BPF_TABLE("lru_hash", u32, struct status, ending, 16384);

struct exit_event {
    u64 ts;
    u32 pid;
    s32 code;
    s32 sig;
    u32 sender_pid;
    char comm[COMM_LEN];
    char sender_comm[COMM_LEN];
    char filename[FILE_LEN];
    char cgroup[CGROUP_LEN];  /* "" when not known */
};
BPF_PERF_OUTPUT(exits);
BPF_PERCPU_ARRAY(exit_scratch, struct exit_event, 1);  /* too big for the 512-byte BPF stack */

struct signal_event {
    u64 ts;
    u32 sender_pid;
    u32 target_pid;
    s32 sig;
    s32 code;
    char sender_comm[COMM_LEN];
    char target_comm[COMM_LEN];
};
BPF_PERF_OUTPUT(signals);

struct oom_event {
    u64 ts;
    u32 pid;
    u32 trigger_pid;
    u64 total_vm_kb;
    u64 anon_rss_kb;
    u64 file_rss_kb;
    u64 shmem_rss_kb;
    s32 oom_score_adj;
    u32 uid;
    char comm[COMM_LEN];
    char trigger_comm[COMM_LEN];
    char cgroup[CGROUP_LEN];
};
BPF_PERF_OUTPUT(ooms);
BPF_PERCPU_ARRAY(oom_scratch, struct oom_event, 1);

static __always_inline struct status *ending_of(u32 tgid) {
    struct status fresh = {.code = -1};
    struct status *st = ending.lookup(&tgid);
    if (st) return st;
    if (ending.update(&tgid, &fresh) != 0) { count(C_MAP_FULL); return 0; }
    return ending.lookup(&tgid);
}

#ifdef HAVE_CGROUP_ATTACH
TRACEPOINT_PROBE(cgroup, cgroup_attach_task) {
    if (args->dst_root != MEMORY_ROOT) return 0;
    u32 pid = args->pid;
    struct cgroup_path where = {};
    unsigned short offset = args->data_loc_dst_path & 0xFFFF;
    bpf_probe_read_kernel_str(where.path, sizeof(where.path), (void *)args + offset);
    proc_cgroup.update(&pid, &where);
    return 0;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_fork) {
    u32 parent = bpf_get_current_pid_tgid() >> 32;
    struct cgroup_path *where = proc_cgroup.lookup(&parent);
    if (!where) return 0;
    u32 child = args->child_pid;
    proc_cgroup.update(&child, where);
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exec) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct file_name file = {};
    unsigned short offset = args->data_loc_filename & 0xFFFF;
    bpf_probe_read_kernel_str(file.name, sizeof(file.name), (void *)args + offset);
    exec_file.update(&tgid, &file);
    ending.delete(&tgid);  /* de_thread's SIGKILL to the old threads is not how this process ends */
    count(C_EXECS);
    return 0;
}

#ifdef HAVE_EXIT_GROUP
TRACEPOINT_PROBE(syscalls, sys_enter_exit_group) {
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct status *st = ending_of(tgid);
    if (st && st->code < 0 && st->sig == 0) st->code = args->error_code & 0xff;
    return 0;
}
#endif

TRACEPOINT_PROBE(signal, signal_generate) {
    int sig = args->sig;
    if (sig <= 0 || sig >= 64 || !((1ULL << sig) & SIGNAL_MASK) || args->result != 0) return 0;
    struct signal_event ev = {};
    ev.ts = bpf_ktime_get_ns();
    ev.sender_pid = bpf_get_current_pid_tgid() >> 32;
    ev.target_pid = args->pid;
    ev.sig = sig;
    ev.code = args->code;
    bpf_get_current_comm(ev.sender_comm, sizeof(ev.sender_comm));
    __builtin_memcpy(ev.target_comm, args->comm, COMM_LEN);
    u32 target = args->pid;
    struct status *st = ending_of(target);
    if (st && st->sender_pid == 0) {
        st->sender_pid = ev.sender_pid;
        __builtin_memcpy(st->sender_comm, ev.sender_comm, COMM_LEN);
    }
    count(C_SIGNALS);
    signals.perf_submit(args, &ev, sizeof(ev));
    return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver) {
    int sig = args->sig;
    /* a signal the process handles or ignores, or whose default is not death, does not end it */
    if (sig <= 0 || sig >= 64 || args->sa_handler != 0 || ((1ULL << sig) & NOT_FATAL)) return 0;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    struct status *st = ending_of(tgid);
    if (st && st->code < 0 && st->sig == 0) st->sig = sig;
    return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit) {
    u64 id = bpf_get_current_pid_tgid();
    u32 tgid = id >> 32;
    if ((u32)id != tgid) {  /* a thread: its process ends when the main thread does */
        u32 tid = (u32)id;
        proc_cgroup.delete(&tid);
        return 0;
    }
    struct status *st = ending.lookup(&tgid);
    if (!st || (st->sig == 0 && st->code <= 0)) {
        if (st) ending.delete(&tgid);
        exec_file.delete(&tgid);
        proc_cgroup.delete(&tgid);
        count(C_CLEAN_EXITS);
        return 0;
    }
    int zero = 0;
    struct exit_event *ev = exit_scratch.lookup(&zero);
    if (!ev) return 0;
    ev->ts = bpf_ktime_get_ns();
    ev->pid = tgid;
    ev->code = st->code;
    ev->sig = st->sig;
    ev->sender_pid = st->sender_pid;
    __builtin_memcpy(ev->sender_comm, st->sender_comm, COMM_LEN);
    bpf_get_current_comm(ev->comm, sizeof(ev->comm));
    struct file_name *file = exec_file.lookup(&tgid);
    if (file) __builtin_memcpy(ev->filename, file->name, FILE_LEN);
    else ev->filename[0] = 0;
    struct cgroup_path *where = proc_cgroup.lookup(&tgid);
    if (where) __builtin_memcpy(ev->cgroup, where->path, CGROUP_LEN);
    else ev->cgroup[0] = 0;
    ending.delete(&tgid);
    exec_file.delete(&tgid);
    proc_cgroup.delete(&tgid);
    count(C_REPORTED_EXITS);
    exits.perf_submit(args, ev, sizeof(*ev));
    return 0;
}

TRACEPOINT_PROBE(oom, mark_victim) {
    int zero = 0;
    struct oom_event *ev = oom_scratch.lookup(&zero);
    if (!ev) return 0;
    ev->ts = bpf_ktime_get_ns();
    ev->pid = args->pid;
    ev->trigger_pid = bpf_get_current_pid_tgid() >> 32;
    bpf_get_current_comm(ev->trigger_comm, sizeof(ev->trigger_comm));
#ifdef HAVE_OOM_RSS
    unsigned short offset = args->data_loc_comm & 0xFFFF;
    bpf_probe_read_kernel_str(ev->comm, sizeof(ev->comm), (void *)args + offset);
    ev->total_vm_kb = args->total_vm;
    ev->anon_rss_kb = args->anon_rss;
    ev->file_rss_kb = args->file_rss;
    ev->shmem_rss_kb = args->shmem_rss;
    ev->oom_score_adj = args->oom_score_adj;
    ev->uid = args->uid;
#else
    __builtin_memset(ev->comm, 0, sizeof(ev->comm));
    ev->total_vm_kb = ev->anon_rss_kb = ev->file_rss_kb = ev->shmem_rss_kb = 0;
    ev->oom_score_adj = 0;
    ev->uid = 0;
#endif
    u32 victim = args->pid;
    struct cgroup_path *where = proc_cgroup.lookup(&victim);
    if (where) __builtin_memcpy(ev->cgroup, where->path, CGROUP_LEN);
    else ev->cgroup[0] = 0;
    count(C_OOMS);
    ooms.perf_submit(args, ev, sizeof(*ev));
    return 0;
}
