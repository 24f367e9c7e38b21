package xdp

//go:generate go tool bpf2go -tags linux -type svc_key -type svc_info -type dest_info -type dest_load -type conn_key -type conn_key4 -type conn_val -type persist_key -type persist_val -type stats -type config -type sched_kind -type conn_state -type drop_reason -type neigh_key -type locality_key -type locality_val -type cursor_swap -target bpfel lb ../../../bpf/xdp_lb.c -- -I../../../bpf -O2 -Wall -Werror
