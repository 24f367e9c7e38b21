package realserver

//go:generate go tool bpf2go -tags linux -target bpfel decap ../../bpf/xdp_decap.c -- -I../../bpf -O2 -Wall -Werror
