package main

//go:generate go tool bpf2go -tags linux -type gen_cfg -type counter -target bpfel bench bench.c -- -I../../bpf -O2 -Wall -Werror
