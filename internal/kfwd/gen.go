package kfwd

// The program is compiled ahead and its object committed, so building z5d
// needs no C toolchain; regenerating needs clang and libbpf's headers.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -I/usr/include/x86_64-linux-gnu" -target bpfel -type flow -type flow_key kfwd kfwd.c
