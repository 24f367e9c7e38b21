package toa

//go:generate go tool bpf2go -tags linux -type toa_key -type toa_val -target bpfel toa ../../bpf/toa_reader.c -- -I../../bpf -O2 -Wall -Werror
