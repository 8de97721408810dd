# Scaling curves of 12 run log(s), written by noisesearch 0.1.0 curves (numbers: curves.csv).
# Self-contained: restyle and redraw with  cd docs/results/half/curves && gnuplot curves.gp
if (!exists('suffix')) suffix = ''
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo noenhanced size 1280,720 font 'sans,11'
} else {
    set terminal png noenhanced size 1280,720
}
set logscale x 2
set format x '%g'
set xlabel 'total GFLOPs per sample (denoiser NFEs and verifier forwards)'
set grid
set key outside right top box Left reverse
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05

$line0 << EOD
# total_gflops fid kid_mean is_mean precision recall accuracy
0.701693952 77.74073543365216 0.2265198001493429 5.152528198227462 0.594 0.5989 0.598
1.403387904 37.38047132843121 0.08327774894863571 5.831271967452816 0.668 0.7975 0.688
4.3855872 31.54590370070332 0.06401485323192894 5.967859876777717 0.702 0.8516 0.688
EOD

$line1 << EOD
# total_gflops fid kid_mean is_mean precision recall accuracy
0.8679761920000013 77.74073543365216 0.2265198001493429 5.152528198227462 0.594 0.5989 0.598
3.2224814079999997 54.91625586728742 0.1643950051935067 6.237048570415797 0.608 0.5775 0.812
12.640502272000012 40.82621297470223 0.1228102222184511 7.105878529227705 0.57 0.5789 0.916
50.312585727999924 35.31002047850552 0.10745380782675362 7.4580138129463505 0.6 0.5724 0.956
EOD

$line2 << EOD
# total_gflops fid kid_mean is_mean precision recall accuracy
4.657446912 43.05464752213106 0.13419185925503585 6.2074516577000365 0.616 0.7398 0.754
9.314893824 10.265202060208821 0.012330935460564128 6.752851078801245 0.73 0.8949 0.8
29.109043200000002 6.569179087704242 -0.0003123276581997647 6.844825002019606 0.768 0.9136 0.804
58.218086400000004 6.508345554831521 -0.00047812337092104415 6.832776807891395 0.754 0.9141 0.806
145.545216 6.524117070491002 -0.0003890741293961142 6.8263565135292055 0.75 0.9139 0.804
EOD

set output 'fid.png'.suffix
set ylabel 'FID (lower is better)'
set title 'FID vs compute'
plot  $line0 using 1:2 with linespoints title 'half.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:2 with linespoints title 'half.h5: random, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 7 ps 1.2, \
     $line2 using 1:2 with linespoints title 'default.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 8 ps 1.2
set output

set output 'kid.png'.suffix
set ylabel 'KID, mean over subsets (lower is better)'
set title 'KID vs compute'
plot  $line0 using 1:3 with linespoints title 'half.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:3 with linespoints title 'half.h5: random, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 7 ps 1.2, \
     $line2 using 1:3 with linespoints title 'default.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 8 ps 1.2
set output

set output 'is.png'.suffix
set ylabel 'Inception Score with the evaluator (higher is better)'
set title 'Inception Score vs compute'
plot  $line0 using 1:4 with linespoints title 'half.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:4 with linespoints title 'half.h5: random, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 7 ps 1.2, \
     $line2 using 1:4 with linespoints title 'default.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 8 ps 1.2
set output

set output 'precision.png'.suffix
set ylabel 'precision (higher is better)'
set title 'Precision vs compute'
plot  $line0 using 1:5 with linespoints title 'half.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:5 with linespoints title 'half.h5: random, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 7 ps 1.2, \
     $line2 using 1:5 with linespoints title 'default.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 8 ps 1.2
set output

set output 'recall.png'.suffix
set ylabel 'recall (higher is better)'
set title 'Recall vs compute'
plot  $line0 using 1:6 with linespoints title 'half.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:6 with linespoints title 'half.h5: random, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 7 ps 1.2, \
     $line2 using 1:6 with linespoints title 'default.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 8 ps 1.2
set output

set output 'accuracy.png'.suffix
set ylabel 'evaluator accuracy on the conditioning labels'
set title 'Accuracy vs compute'
plot  $line0 using 1:7 with linespoints title 'half.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:7 with linespoints title 'half.h5: random, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 7 ps 1.2, \
     $line2 using 1:7 with linespoints title 'default.h5: more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 8 ps 1.2
set output
