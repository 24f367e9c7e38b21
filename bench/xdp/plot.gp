# Bar chart of a bench/xdp run: gnuplot -e "dat='xdp.dat'; out='xdp.png'" plot.gp
set terminal pngcairo size 900,480 font "sans,11"
set output out
set title "XDP engine forwarding rate (frames delivered to the real server, one sending CPU)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set ylabel "Mpps"
set yrange [0:*]
set grid ytics
set key top right
set xtics nomirror
plot dat using 2:xtic(1) title "established flows" lc rgb "#2b6cb0", \
     '' using 3 title "new connections (SYN each)" lc rgb "#dd6b20"
