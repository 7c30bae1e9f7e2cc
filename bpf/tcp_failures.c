/* TCP trouble per destination, counted in the kernel: connections that failed (refused by a reset, or
 * closed in SYN_SENT: timeout, unreachable), retransmits, resets received and sent.
 *
 * Fed by: sock:inet_sock_set_state, tcp:tcp_retransmit_skb, tcp:tcp_receive_reset, tcp:tcp_send_reset.
 * Feeds: collectors/kernel.py, which drains the hash `flows` (one count per kind, owning process and
 * remote address and service port, with the times of its first and last one) every interval, and
 * reads counters[C_CONNECTS...].
 * Which process owns a socket is known only where the kernel runs in its context: at connect()
 * (CLOSE -> SYN_SENT), kept in `socks` by the socket's address (a key, never dereferenced) until the
 * socket closes; retransmits and resets on other sockets (accepted ones) count under pid 0, with
 * the local address, by which the collector finds the pod (its IP).
 * Needs process_lifecycle.c before it (counters, count()). Compile-time flags: HAVE_RECEIVE_RESET,
 * HAVE_SEND_RESET_SOCKADDR (6.10+: tcp_send_reset carries sockaddrs).
 */
#define TCP_ESTABLISHED 1
#define TCP_SYN_SENT 2
#define TCP_CLOSE 7
#define IPPROTO_TCP_ 6
#define AF_INET_ 2
#define AF_INET6_ 10

enum flow_kind { F_RETRANSMIT = 1, F_RESET_RECEIVED = 2, F_RESET_SENT = 3, F_CONNECT_REFUSED = 4,
                 F_CONNECT_FAILED = 5 };

struct sock_owner {
    u32 pid;
    u8 state;
    u8 reset;
    u8 pad[2];
    char comm[COMM_LEN];
};
BPF_TABLE("lru_hash", u64, struct sock_owner, socks, 65536);

struct flow_key {
    u8 addr[16];   /* the remote address (IPv4 in the first 4 bytes) */
    u8 laddr[16];  /* the local one: a pod's IP names the pod when the process is not known */
    u32 pid;       /* the owning process, 0 when not known */
    u16 family;
    u16 port;      /* the service port: the remote one, or ours for a reset we sent */
    u32 kind;
};
struct flow_value {
    u64 count;
    u64 last_ns;
    char comm[COMM_LEN];
    u64 first_ns;  /* the interval's first one: when the trouble began, as the collector stamps it */
};
BPF_HASH(flows, struct flow_key, struct flow_value, 16384);

static __always_inline void add_flow(struct flow_key *key, struct sock_owner *owner) {
    struct flow_value zero = {};
    struct flow_value *value = flows.lookup(key);
    if (!value) {
        if (owner) __builtin_memcpy(zero.comm, owner->comm, COMM_LEN);
        zero.first_ns = bpf_ktime_get_ns();
        if (flows.update(key, &zero) != 0) { count(C_MAP_FULL); return; }
        value = flows.lookup(key);
        if (!value) return;
    }
    __sync_fetch_and_add(&value->count, 1);
    value->last_ns = bpf_ktime_get_ns();
}

TRACEPOINT_PROBE(sock, inet_sock_set_state) {
    if (args->protocol != IPPROTO_TCP_) return 0;
    u64 sk = (u64)args->skaddr;
    int old = args->oldstate, new = args->newstate;
    if (new == TCP_SYN_SENT) {
        struct sock_owner owner = {};
        owner.pid = bpf_get_current_pid_tgid() >> 32;
        owner.state = TCP_SYN_SENT;
        bpf_get_current_comm(owner.comm, sizeof(owner.comm));
        socks.update(&sk, &owner);
        count(C_CONNECTS);
        return 0;
    }
    struct sock_owner *owner = socks.lookup(&sk);
    if (old == TCP_SYN_SENT && new == TCP_CLOSE) {
        struct flow_key key = {};
        key.family = args->family;
        key.port = args->dport;
        key.pid = owner ? owner->pid : 0;
        key.kind = owner && owner->reset ? F_CONNECT_REFUSED : F_CONNECT_FAILED;
        if (args->family == AF_INET_) {
            __builtin_memcpy(key.addr, args->daddr, 4);
            __builtin_memcpy(key.laddr, args->saddr, 4);
        } else {
            __builtin_memcpy(key.addr, args->daddr_v6, 16);
            __builtin_memcpy(key.laddr, args->saddr_v6, 16);
        }
        count(C_CONNECT_FAILURES);
        add_flow(&key, owner);
    }
    if (new == TCP_CLOSE) socks.delete(&sk);
    else if (owner) owner->state = new;
    return 0;
}

TRACEPOINT_PROBE(tcp, tcp_retransmit_skb) {
    u64 sk = (u64)args->skaddr;
    struct sock_owner *owner = socks.lookup(&sk);
    struct flow_key key = {};
    key.family = args->family;
    key.port = args->dport;
    key.pid = owner ? owner->pid : 0;
    key.kind = F_RETRANSMIT;
    if (args->family == AF_INET_) {
        __builtin_memcpy(key.addr, args->daddr, 4);
        __builtin_memcpy(key.laddr, args->saddr, 4);
    } else {
        __builtin_memcpy(key.addr, args->daddr_v6, 16);
        __builtin_memcpy(key.laddr, args->saddr_v6, 16);
    }
    add_flow(&key, owner);
    return 0;
}

#ifdef HAVE_RECEIVE_RESET
TRACEPOINT_PROBE(tcp, tcp_receive_reset) {
    u64 sk = (u64)args->skaddr;
    struct sock_owner *owner = socks.lookup(&sk);
    if (owner) {
        owner->reset = 1;
        if (owner->state == TCP_SYN_SENT) return 0;  /* a refused connect: counted when it closes */
    }
    struct flow_key key = {};
    key.family = args->family;
    key.port = args->dport;
    key.pid = owner ? owner->pid : 0;
    key.kind = F_RESET_RECEIVED;
    if (args->family == AF_INET_) {
        __builtin_memcpy(key.addr, args->daddr, 4);
        __builtin_memcpy(key.laddr, args->saddr, 4);
    } else {
        __builtin_memcpy(key.addr, args->daddr_v6, 16);
        __builtin_memcpy(key.laddr, args->saddr_v6, 16);
    }
    add_flow(&key, owner);
    return 0;
}
#endif

#ifdef HAVE_SEND_RESET_SOCKADDR
enum sk_rst_reason { TAPIO_RST_REASON_UNREAD = 0 };  /* the tracepoint's field type; its value is not read */

TRACEPOINT_PROBE(tcp, tcp_send_reset) {
    /* saddr/daddr are struct sockaddr_in / sockaddr_in6 (a stable ABI): family at 0, port (network
     * order) at 2, the IPv4 address at 4, the IPv6 one at 8 */
    u64 sk = (u64)args->skaddr;
    struct sock_owner *owner = sk ? socks.lookup(&sk) : 0;
    u8 local[28], remote[28];
    bpf_probe_read_kernel(local, sizeof(local), (void *)args->saddr);  /* a copy: no variable ctx offsets */
    bpf_probe_read_kernel(remote, sizeof(remote), (void *)args->daddr);
    struct flow_key key = {};
    key.family = local[0] | (local[1] << 8);
    key.port = (local[2] << 8) | local[3];
    key.pid = owner ? owner->pid : 0;
    key.kind = F_RESET_SENT;
    if (key.family == AF_INET_) {
        __builtin_memcpy(key.addr, remote + 4, 4);
        __builtin_memcpy(key.laddr, local + 4, 4);
    } else if (key.family == AF_INET6_) {
        __builtin_memcpy(key.addr, remote + 8, 16);
        __builtin_memcpy(key.laddr, local + 8, 16);
    } else {
        return 0;
    }
    add_flow(&key, owner);
    return 0;
}
#endif
