//go:build ignore

// SPDX-License-Identifier: (MIT OR GPL-2.0)
//
// The relay's kernel fast path: a TCX ingress program that forwards the RTP
// of streams the relay has already latched, so that no process wakes per
// packet. Userspace (kfwd.go) installs one flow per direction once both
// ends are known; everything else (the first packets, RTCP, DTLS, packets
// from anyone but the latched source, anything unusual) goes on to the
// relay's sockets untouched. Rebuild with `go generate ./internal/kfwd`.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/pkt_cls.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef TCX_NEXT
#define TCX_NEXT -1
#define TCX_PASS 0
#endif

#define ETH_LEN 14
#define IP_OFF ETH_LEN
#define IP_CSUM (IP_OFF + offsetof(struct iphdr, check))
#define IP_SADDR (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DADDR (IP_OFF + offsetof(struct iphdr, daddr))
#define IP6_SADDR (IP_OFF + offsetof(struct ipv6hdr, saddr))
#define IP6_DADDR (IP_OFF + offsetof(struct ipv6hdr, daddr))
#define UDP4_OFF (IP_OFF + sizeof(struct iphdr))
#define UDP6_OFF (IP_OFF + sizeof(struct ipv6hdr))

// flow_key is a datagram as it reaches the relay: latched source, relay
// socket. Addresses are IPv6, an IPv4 one mapped (::ffff:a.b.c.d);
// addresses and ports in network order.
struct flow_key {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
};

// flow is where the datagram goes (relay socket of the other side, the
// other side's latched address, of the key's family) and what was seen of
// it. Userspace writes the first group once; the program writes the
// counters.
struct flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u32 ifindex; // 0: the destination is local; else leave by it
	__u32 clock;   // RTP clock rate of pt, for jitter
	__u8 pt;       // the payload type sequence and jitter follow
	__u8 pad[3];

	__u64 packets;
	__u64 bytes;
	__u64 last_ns;     // bpf_ktime_get_ns of the last packet
	__u64 pt_packets;  // packets of pt
	__u32 started;
	__u32 base_seq;    // first sequence number of the current run
	__u32 max_seq;     // highest sequence number, extended by wraps
	__u32 run_start;   // pt_packets before the current run began
	__u64 lost_before; // packets lost in earlier runs
	__u32 transit;     // RFC 3550 A.8, in RTP units
	__u32 jitter;      // RFC 3550 A.8, times 16
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct flow_key);
	__type(value, struct flow);
	__uint(max_entries, 1024); // set by the loader
	// Allocated as directions are added: a node's table is sized for
	// its whole port range, which is mostly idle.
	__uint(map_flags, BPF_F_NO_PREALLOC);
} flows SEC(".maps");

// seq_run follows the sequence numbers of pt (RFC 3550 A.1, without
// probation: the flow was installed after the relay latched the source).
static __always_inline void seq_run(struct flow *f, __u16 seq, __u64 packets)
{
	if (!f->started) {
		f->started = 1;
		f->base_seq = seq;
		f->max_seq = seq;
		f->run_start = packets - 1;
		return;
	}
	__u16 max = f->max_seq & 0xffff;
	__u16 delta = seq - max;
	if (delta < 3000) {
		if (seq < max)
			f->max_seq += 0x10000;
		f->max_seq = (f->max_seq & 0xffff0000) | seq;
	} else if (delta <= 0xffff - 100) {
		// A jump: the sender restarted. Keep what the old run lost.
		__u64 expected = f->max_seq - f->base_seq + 1;
		__u64 got = packets - 1 - f->run_start;
		if (expected > got)
			f->lost_before += expected - got;
		f->base_seq = seq;
		f->max_seq = seq;
		f->run_start = packets - 1;
	}
	// else: a duplicate or late packet.
}

static __always_inline void jitter(struct flow *f, __u32 ts, __u64 now)
{
	if (!f->clock)
		return;
	__u32 arrival = (now / 1000) * f->clock / 1000000;
	__u32 transit = arrival - ts;
	if (f->transit) {
		__s32 d = transit - f->transit;
		if (d < 0)
			d = -d;
		f->jitter += d - ((f->jitter + 8) >> 4);
	}
	f->transit = transit;
}

SEC("tcx/ingress")
int relay_ingress(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct flow_key k = {};
	struct ethhdr *eth = data;
	__u32 l4;
	int v6;
	if (data + ETH_LEN > end || skb->gso_segs > 1)
		return TCX_NEXT;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data + IP_OFF;
		if ((void *)(ip + 1) > end)
			return TCX_NEXT;
		if (ip->ihl != 5 || ip->protocol != IPPROTO_UDP || (ip->frag_off & bpf_htons(0x3fff)))
			return TCX_NEXT;
		k.saddr[10] = k.saddr[11] = k.daddr[10] = k.daddr[11] = 0xff;
		__builtin_memcpy(&k.saddr[12], &ip->saddr, 4);
		__builtin_memcpy(&k.daddr[12], &ip->daddr, 4);
		l4 = UDP4_OFF;
		v6 = 0;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data + IP_OFF;
		if ((void *)(ip6 + 1) > end)
			return TCX_NEXT;
		// UDP right after the header: extension headers (fragments
		// among them) are the relay's.
		if (ip6->nexthdr != IPPROTO_UDP)
			return TCX_NEXT;
		__builtin_memcpy(k.saddr, &ip6->saddr, 16);
		__builtin_memcpy(k.daddr, &ip6->daddr, 16);
		l4 = UDP6_OFF;
		v6 = 1;
	} else {
		return TCX_NEXT;
	}
	struct udphdr udp;
	if (bpf_skb_load_bytes(skb, l4, &udp, sizeof(udp)))
		return TCX_NEXT;
	k.sport = udp.source;
	k.dport = udp.dest;
	struct flow *f = bpf_map_lookup_elem(&flows, &k);
	if (!f)
		return TCX_NEXT;

	// RTP version 2 and not RTCP (RFC 5761 4): RTCP, and whatever else
	// the relay carries, is the relay's to read.
	__u32 rtp_off = l4 + sizeof(struct udphdr);
	__u8 rtp[12];
	if (bpf_skb_load_bytes(skb, rtp_off, rtp, sizeof(rtp)))
		return TCX_NEXT;
	__u8 pt = rtp[1] & 0x7f;
	if ((rtp[0] & 0xc0) != 0x80 || (rtp[1] >= 192 && rtp[1] <= 223))
		return TCX_NEXT;
	__u32 len = skb->len - rtp_off;
	if (len > 4096)
		return TCX_NEXT; // the relay's largest datagram: it drops bigger ones
	// The header must fit, CSRC list and extension included, as the
	// relay's classifyRTP requires; anything else is the relay's to drop.
	__u32 hdr = 12 + 4 * (rtp[0] & 0x0f);
	if (hdr > len)
		return TCX_NEXT;
	if (rtp[0] & 0x10) {
		__u8 ext[4];
		if (hdr + 4 > len || bpf_skb_load_bytes(skb, rtp_off + hdr, ext, 4))
			return TCX_NEXT;
		hdr += 4 + 4 * ((__u32)ext[2] << 8 | ext[3]);
		if (hdr > len)
			return TCX_NEXT;
	}
	__u16 seq = (__u16)rtp[2] << 8 | rtp[3];
	__u32 ts = (__u32)rtp[4] << 24 | (__u32)rtp[5] << 16 | (__u32)rtp[6] << 8 | rtp[7];

	__u64 now = bpf_ktime_get_ns();
	__sync_fetch_and_add(&f->packets, 1);
	__sync_fetch_and_add(&f->bytes, len);
	f->last_ns = now;
	if (pt == f->pt) {
		seq_run(f, seq, ++f->pt_packets);
		jitter(f, ts, now);
	}

	// Rewrite, checksums first: each helper is told the old and the new
	// value (or their difference), so the order of the writes is free.
	__u32 csum = l4 + offsetof(struct udphdr, check);
	__u64 mangled = BPF_F_MARK_MANGLED_0; // an IPv4 UDP checksum of 0 stays "none"
	__u16 nsport = f->sport, ndport = f->dport;
	if (v6) {
		__u8 ns[16], nd[16];
		__builtin_memcpy(ns, f->saddr, 16);
		__builtin_memcpy(nd, f->daddr, 16);
		__s64 ds = bpf_csum_diff((__be32 *)k.saddr, 16, (__be32 *)ns, 16, 0);
		__s64 dd = bpf_csum_diff((__be32 *)k.daddr, 16, (__be32 *)nd, 16, 0);
		bpf_l4_csum_replace(skb, csum, 0, ds, mangled | BPF_F_PSEUDO_HDR);
		bpf_l4_csum_replace(skb, csum, 0, dd, mangled | BPF_F_PSEUDO_HDR);
		bpf_skb_store_bytes(skb, IP6_SADDR, ns, 16, 0);
		bpf_skb_store_bytes(skb, IP6_DADDR, nd, 16, 0);
	} else {
		__u32 os, od, ns, nd;
		__builtin_memcpy(&os, &k.saddr[12], 4);
		__builtin_memcpy(&od, &k.daddr[12], 4);
		__builtin_memcpy(&ns, &f->saddr[12], 4);
		__builtin_memcpy(&nd, &f->daddr[12], 4);
		bpf_l4_csum_replace(skb, csum, os, ns, mangled | BPF_F_PSEUDO_HDR | 4);
		bpf_l4_csum_replace(skb, csum, od, nd, mangled | BPF_F_PSEUDO_HDR | 4);
		bpf_l3_csum_replace(skb, IP_CSUM, os, ns, 4);
		bpf_l3_csum_replace(skb, IP_CSUM, od, nd, 4);
		bpf_skb_store_bytes(skb, IP_SADDR, &ns, 4, 0);
		bpf_skb_store_bytes(skb, IP_DADDR, &nd, 4, 0);
	}
	bpf_l4_csum_replace(skb, csum, k.sport, nsport, mangled | 2);
	bpf_l4_csum_replace(skb, csum, k.dport, ndport, mangled | 2);
	bpf_skb_store_bytes(skb, l4, &nsport, 2, 0);
	bpf_skb_store_bytes(skb, l4 + 2, &ndport, 2, 0);

	if (!f->ifindex)
		return TCX_PASS; // up the stack to the local socket it now names
	// Out of the interface toward the destination, the kernel resolving
	// the next hop (no IP forwarding needed: the relay sends as itself).
	return bpf_redirect_neigh(f->ifindex, 0, 0, 0);
}

char __license[] SEC("license") = "Dual MIT/GPL";
