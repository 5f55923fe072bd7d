// The outbound network's fences: routes and rules agent-init installs in the container's
// network namespace, by hand over rtnetlink (raw system calls, no libc, no libmnl).
//
// With `"network": "outbound"` a user-mode stack (slirp4netns, started by the agent while
// this process waited on the sync pipe) has already given the namespace `tap0` and a
// default route. What the job must not reach goes here, as "unreachable" routes in the main
// table (connect() fails at once with EHOSTUNREACH): link-local and metadata addresses, the
// agent's own host addresses, the policy's denied CIDRs, and the stack's gateway (which
// stands for the host's loopback). An allowed host port is a rule that sends TCP to the
// gateway's port into a table of its own, where the gateway is reachable again: one port
// of the host's loopback, not all of it.
//
// Why the job cannot undo them: the namespace belongs to the container's user namespace,
// while the command runs in a user namespace nested in it (init.c), so the CAP_NET_ADMIN it
// may hold there counts for nothing here (ns_capable on the netns's owner fails).
#include "../CAgentSandbox/sys.h"

#include <linux/fib_rules.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

/// The stack's interface inside the namespace (slirp4netns is told this name).
#define SB_TAP "tap0"

/// One request: header, payload, attributes; big enough for a rule with five attributes.
struct sb_nlreq {
    struct nlmsghdr h;
    char body[256];
};

static void sb_zero(void *p, size_t n) {
    for (size_t k = 0; k < n; k++) ((char *)p)[k] = 0;
}

/// Appends attribute `type` with `len` bytes of `data` to the request.
static void sb_attr(struct sb_nlreq *req, uint16_t type, const void *data, size_t len) {
    struct rtattr *a = (struct rtattr *)((char *)req + NLMSG_ALIGN(req->h.nlmsg_len));
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    for (size_t k = 0; k < len; k++) ((char *)RTA_DATA(a))[k] = ((const char *)data)[k];
    req->h.nlmsg_len = NLMSG_ALIGN(req->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/// Sends the request and waits for its acknowledgement: 0 or -errno.
static long sb_nl_talk(int s, struct sb_nlreq *req, uint32_t seq) {
    req->h.nlmsg_seq = seq;
    req->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
    struct sockaddr_nl to;
    sb_zero(&to, sizeof to);
    to.nl_family = AF_NETLINK;
    long r = SB6(SYS_sendto, s, req, req->h.nlmsg_len, 0, &to, sizeof to);
    if (r < 0) return r;
    char buf[1024] __attribute__((aligned(8)));
    for (;;) {
        long n = SB6(SYS_recvfrom, s, buf, sizeof buf, 0, 0, 0);
        if (n == -EINTR) continue;
        if (n < 0) return n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned long)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != seq || h->nlmsg_type != NLMSG_ERROR) continue;
            return ((struct nlmsgerr *)NLMSG_DATA(h))->error;
        }
    }
}

/// The index of the stack's interface (for the allowed ports' table), or -errno.
static long sb_tap_index(void) {
    long s = SB3(SYS_socket, AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0) return s;
    struct ifreq ifr;
    sb_zero(&ifr, sizeof ifr);
    const char *name = SB_TAP;
    for (size_t k = 0; name[k]; k++) ifr.ifr_name[k] = name[k];
    long r = SB3(SYS_ioctl, s, SIOCGIFINDEX, &ifr);
    SB1(SYS_close, s);
    return r < 0 ? r : ifr.ifr_ifindex;
}

static size_t sb_addr_len(const struct agent_sandbox_route *rt) { return rt->family == AF_INET6 ? 16 : 4; }

/// RTM_NEWROUTE: unreachable in main, or a direct route out of the tap in a table of its own.
static void sb_route_msg(struct sb_nlreq *req, const struct agent_sandbox_route *rt, int32_t oif) {
    req->h.nlmsg_type = RTM_NEWROUTE;
    req->h.nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE;
    req->h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
    struct rtmsg *m = (struct rtmsg *)NLMSG_DATA(&req->h);
    m->rtm_family = (unsigned char)rt->family;
    m->rtm_dst_len = rt->prefix_len;
    m->rtm_protocol = RTPROT_STATIC;
    uint32_t table = RT_TABLE_MAIN;
    if (rt->kind == AGENT_SANDBOX_ROUTE_UNREACHABLE) {
        m->rtm_type = RTN_UNREACHABLE;
        m->rtm_scope = RT_SCOPE_UNIVERSE;
    } else {
        m->rtm_type = RTN_UNICAST;
        m->rtm_scope = RT_SCOPE_LINK;
        table = rt->table;
    }
    m->rtm_table = table < 256 ? (unsigned char)table : RT_TABLE_UNSPEC;
    sb_attr(req, RTA_TABLE, &table, sizeof table);
    if (rt->prefix_len) sb_attr(req, RTA_DST, rt->addr, sb_addr_len(rt));
    if (rt->kind == AGENT_SANDBOX_ROUTE_DIRECT) sb_attr(req, RTA_OIF, &oif, sizeof oif);
}

/// RTM_NEWRULE: TCP to addr/prefix_len port `port` looks up `table` (before main).
static void sb_rule_msg(struct sb_nlreq *req, const struct agent_sandbox_route *rt, uint32_t priority) {
    req->h.nlmsg_type = RTM_NEWRULE;
    req->h.nlmsg_flags = NLM_F_CREATE | NLM_F_EXCL;
    req->h.nlmsg_len = NLMSG_LENGTH(sizeof(struct fib_rule_hdr));
    struct fib_rule_hdr *f = (struct fib_rule_hdr *)NLMSG_DATA(&req->h);
    f->family = (unsigned char)rt->family;
    f->dst_len = rt->prefix_len;
    f->action = FR_ACT_TO_TBL;
    f->table = rt->table < 256 ? (unsigned char)rt->table : RT_TABLE_UNSPEC;
    uint32_t table = rt->table;
    uint8_t proto = IPPROTO_TCP;
    struct fib_rule_port_range ports = { rt->port, rt->port };
    sb_attr(req, FRA_TABLE, &table, sizeof table);
    sb_attr(req, FRA_PRIORITY, &priority, sizeof priority);
    if (rt->prefix_len) sb_attr(req, FRA_DST, rt->addr, sb_addr_len(rt));
    sb_attr(req, FRA_IP_PROTO, &proto, sizeof proto);
    sb_attr(req, FRA_DPORT_RANGE, &ports, sizeof ports);
}

void sb_net_routes(const struct agent_sandbox_plan *p) {
    long s = SB3(SYS_socket, AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (s < 0) sb_fail(AGENT_STAGE_ROUTES, -1, s);
    long oif = 0;
    for (size_t i = 0; i < p->n_routes; i++) {
        const struct agent_sandbox_route *rt = &p->routes[i];
        struct sb_nlreq req;
        sb_zero(&req, sizeof req);
        if (rt->kind == AGENT_SANDBOX_ROUTE_DIRECT && oif == 0) {
            oif = sb_tap_index();
            if (oif < 0) sb_fail(AGENT_STAGE_ROUTES, (int)i, oif);
        }
        if (rt->kind == AGENT_SANDBOX_ROUTE_RULE_PORT) sb_rule_msg(&req, rt, 1000 + (uint32_t)i);
        else sb_route_msg(&req, rt, (int32_t)oif);
        long r = sb_nl_talk((int)s, &req, (uint32_t)i + 1);
        // A kernel without IPv6 has no IPv6 routes to fence.
        if (r == -EAFNOSUPPORT && rt->family == AF_INET6) continue;
        if (r < 0) sb_fail(AGENT_STAGE_ROUTES, (int)i, r);
    }
    SB1(SYS_close, s);
}
