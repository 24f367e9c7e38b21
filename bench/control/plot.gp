# Plot of a bench/control run: gnuplot -e "dat='control.dat'; out='control.png'" plot.gp
# Blocks of dat (see report.go): 0 proxy rr, 1 proxy mh, 2 xdp rr, 3 xdp mh;
# columns: services, restore, one -e, flap, read back (seconds); a restore
# stopped at the limit is a row "services restored by then, NaN …, limit".
set terminal pngcairo size 1200,620 font "sans,10"
set output out
set multiplot layout 1,2 title "GVS control plane: time against table size (4 real servers per service)"
set logscale xy
set grid xtics ytics mxtics mytics
set xlabel "services in the table"
set ylabel "seconds"
set xrange [5:20000]
set key below maxrows 3 font ",9"
set style line 1 lc rgb "#2b6cb0" lw 2 pt 7
set style line 2 lc rgb "#2b6cb0" lw 2 pt 5 dt 2
set style line 3 lc rgb "#dd6b20" lw 2 pt 7
set style line 4 lc rgb "#dd6b20" lw 2 pt 5 dt 2
set title "restore the whole table (gvsadm -R); goal ≤ 5 s at 10,000"
plot dat index 0 using 1:2 with linespoints ls 1 title "proxy rr", \
     '' index 1 using 1:2 with linespoints ls 2 title "proxy mh", \
     '' index 2 using 1:2 with linespoints ls 3 title "xdp rr", \
     '' index 3 using 1:2 with linespoints ls 4 title "xdp mh", \
     '' index 0 using 1:6 with points lc rgb "#2b6cb0" pt 8 ps 2 title "stopped at the limit", \
     '' index 1 using 1:6 with points lc rgb "#2b6cb0" pt 8 ps 2 notitle, \
     '' index 2 using 1:6 with points lc rgb "#dd6b20" pt 8 ps 2 notitle, \
     '' index 3 using 1:6 with points lc rgb "#dd6b20" pt 8 ps 2 notitle, \
     '' index 0 using 1:5 with lines lc rgb "#888888" dt 3 title "-Sn proxy rr", \
     5 with lines lc rgb "#c53030" dt 4 title "goal"
set title "one gvsadm -e (●) and one health-check flap, down + up (▲)"
plot dat index 0 using 1:3 with linespoints ls 1 title "-e proxy rr", \
     '' index 1 using 1:3 with linespoints ls 2 title "-e proxy mh", \
     '' index 2 using 1:3 with linespoints ls 3 title "-e xdp rr", \
     '' index 3 using 1:3 with linespoints ls 4 title "-e xdp mh", \
     '' index 0 using 1:4 with linespoints ls 1 pt 9 title "flap proxy rr", \
     '' index 1 using 1:4 with linespoints ls 2 pt 9 title "flap proxy mh", \
     '' index 2 using 1:4 with linespoints ls 3 pt 9 title "flap xdp rr", \
     '' index 3 using 1:4 with linespoints ls 4 pt 9 title "flap xdp mh"
unset multiplot
