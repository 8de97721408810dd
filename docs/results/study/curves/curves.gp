# Scaling curves of 26 run log(s), written by noisesearch 0.1.0 curves (numbers: curves.csv).
# Self-contained: restyle and redraw with  cd docs/results/study/curves && gnuplot curves.gp
if (!exists('suffix')) suffix = ''
if (strstrt(GPVAL_TERMINALS, 'pngcairo') > 0) {
    set terminal pngcairo noenhanced size 1280,720 font 'sans,11'
} else {
    set terminal png noenhanced size 1280,720
}
set logscale x 2
set format x '%g'
set xlabel 'total NFEs per sample (search + final denoising)'
set grid
set key outside right top box Left reverse
set offsets graph 0.05, graph 0.05, graph 0.05, graph 0.05

$line0 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
8 43.05464752213106 0.13419185925503585 6.2074516577000365 0.616 0.7398 0.754
16 10.265202060208821 0.012330935460564128 6.752851078801245 0.73 0.8949 0.8
50 6.569179087704242 -0.0003123276581997647 6.844825002019606 0.768 0.9136 0.804
100 6.508345554831521 -0.00047812337092104415 6.832776807891395 0.754 0.9141 0.806
250 6.524117070491002 -0.0003890741293961142 6.8263565135292055 0.75 0.9139 0.804
EOD

$line1 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
26 30.824228990209576 0.095004185090596 6.80028659432909 0.61 0.7031 0.89
260 29.645796864817385 0.08560487671756438 8.367555505285049 0.664 0.4513 0.998
EOD

$line2 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
34 30.490074799234435 0.09220416768341137 6.765581466114287 0.606 0.6902 0.872
340 27.35987787938643 0.07966671077848547 8.254951901048253 0.628 0.4679 0.984
EOD

$line3 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
34 30.699344164544073 0.08733985635704247 6.548537726717427 0.628 0.6664 0.802
340 23.519199454006866 0.07241822176367264 7.131658020966306 0.692 0.6782 0.852
EOD

$line4 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
8 43.05464752213106 0.13419185925503585 6.2074516577000365 0.616 0.7398 0.754
32 31.796183480184254 0.10273986639174472 7.407640603358864 0.632 0.6198 0.916
256 27.994595897839645 0.08103690791371986 8.058049001788374 0.658 0.4792 0.988
EOD

$line5 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
9 43.05464752213106 0.13419185925503585 6.2074516577000365 0.616 0.7398 0.754
36 32.159499258768165 0.10649506060726152 7.105011451670556 0.648 0.6632 0.884
288 29.81951676092399 0.09102806081944007 7.83852092871272 0.678 0.5318 0.954
EOD

$line6 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
9 43.05464752213106 0.13419185925503585 6.2074516577000365 0.616 0.7398 0.754
36 34.94418505951239 0.11617359393610982 6.6365443333515355 0.676 0.7195 0.82
288 37.36503250537271 0.12230198189436202 6.741605681143429 0.676 0.716 0.8
EOD

$line7 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
40 35.3658498953032 0.11069847067402083 6.647813747075834 0.656 0.6804 0.848
276.944 29.17156724196184 0.08764756750587525 7.18617217653451 0.652 0.7042 0.918
EOD

$line8 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
45 36.26784642240182 0.11263067545679524 6.580794651537708 0.64 0.6748 0.832
316.782 32.50423365675101 0.09997291329966852 6.852245143588519 0.652 0.6273 0.874
EOD

$line9 << EOD
# total_nfe fid kid_mean is_mean precision recall accuracy
45 37.40965067447473 0.11733019350203777 6.428756224008633 0.642 0.6828 0.794
313.002 32.86204499644714 0.10578449075720668 6.436629735859858 0.652 0.7529 0.828
EOD

set output 'fid.png'.suffix
set ylabel 'FID (lower is better)'
set title 'FID vs compute'
plot  $line0 using 1:2 with linespoints title 'more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:2 with linespoints title 'paths, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 5 ps 1.2, \
     $line2 using 1:2 with linespoints title 'paths, ensemble(class_logit,self_similarity)' lc rgb '#ff7f0e' dt 1 lw 2 pt 5 ps 1.2, \
     $line3 using 1:2 with linespoints title 'paths, self_similarity' lc rgb '#2ca02c' dt 1 lw 2 pt 5 ps 1.2, \
     $line4 using 1:2 with linespoints title 'random, class_logit' lc rgb '#d62728' dt 1 lw 2 pt 7 ps 1.2, \
     $line5 using 1:2 with linespoints title 'random, ensemble(class_logit,self_similarity)' lc rgb '#9467bd' dt 1 lw 2 pt 7 ps 1.2, \
     $line6 using 1:2 with linespoints title 'random, self_similarity' lc rgb '#8c564b' dt 1 lw 2 pt 7 ps 1.2, \
     $line7 using 1:2 with linespoints title 'zero_order, class_logit' lc rgb '#e377c2' dt 1 lw 2 pt 9 ps 1.2, \
     $line8 using 1:2 with linespoints title 'zero_order, ensemble(class_logit,self_similarity)' lc rgb '#bcbd22' dt 1 lw 2 pt 9 ps 1.2, \
     $line9 using 1:2 with linespoints title 'zero_order, self_similarity' lc rgb '#17becf' dt 1 lw 2 pt 9 ps 1.2
set output

set output 'kid.png'.suffix
set ylabel 'KID, mean over subsets (lower is better)'
set title 'KID vs compute'
plot  $line0 using 1:3 with linespoints title 'more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:3 with linespoints title 'paths, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 5 ps 1.2, \
     $line2 using 1:3 with linespoints title 'paths, ensemble(class_logit,self_similarity)' lc rgb '#ff7f0e' dt 1 lw 2 pt 5 ps 1.2, \
     $line3 using 1:3 with linespoints title 'paths, self_similarity' lc rgb '#2ca02c' dt 1 lw 2 pt 5 ps 1.2, \
     $line4 using 1:3 with linespoints title 'random, class_logit' lc rgb '#d62728' dt 1 lw 2 pt 7 ps 1.2, \
     $line5 using 1:3 with linespoints title 'random, ensemble(class_logit,self_similarity)' lc rgb '#9467bd' dt 1 lw 2 pt 7 ps 1.2, \
     $line6 using 1:3 with linespoints title 'random, self_similarity' lc rgb '#8c564b' dt 1 lw 2 pt 7 ps 1.2, \
     $line7 using 1:3 with linespoints title 'zero_order, class_logit' lc rgb '#e377c2' dt 1 lw 2 pt 9 ps 1.2, \
     $line8 using 1:3 with linespoints title 'zero_order, ensemble(class_logit,self_similarity)' lc rgb '#bcbd22' dt 1 lw 2 pt 9 ps 1.2, \
     $line9 using 1:3 with linespoints title 'zero_order, self_similarity' lc rgb '#17becf' dt 1 lw 2 pt 9 ps 1.2
set output

set output 'is.png'.suffix
set ylabel 'Inception Score with the evaluator (higher is better)'
set title 'Inception Score vs compute'
plot  $line0 using 1:4 with linespoints title 'more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:4 with linespoints title 'paths, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 5 ps 1.2, \
     $line2 using 1:4 with linespoints title 'paths, ensemble(class_logit,self_similarity)' lc rgb '#ff7f0e' dt 1 lw 2 pt 5 ps 1.2, \
     $line3 using 1:4 with linespoints title 'paths, self_similarity' lc rgb '#2ca02c' dt 1 lw 2 pt 5 ps 1.2, \
     $line4 using 1:4 with linespoints title 'random, class_logit' lc rgb '#d62728' dt 1 lw 2 pt 7 ps 1.2, \
     $line5 using 1:4 with linespoints title 'random, ensemble(class_logit,self_similarity)' lc rgb '#9467bd' dt 1 lw 2 pt 7 ps 1.2, \
     $line6 using 1:4 with linespoints title 'random, self_similarity' lc rgb '#8c564b' dt 1 lw 2 pt 7 ps 1.2, \
     $line7 using 1:4 with linespoints title 'zero_order, class_logit' lc rgb '#e377c2' dt 1 lw 2 pt 9 ps 1.2, \
     $line8 using 1:4 with linespoints title 'zero_order, ensemble(class_logit,self_similarity)' lc rgb '#bcbd22' dt 1 lw 2 pt 9 ps 1.2, \
     $line9 using 1:4 with linespoints title 'zero_order, self_similarity' lc rgb '#17becf' dt 1 lw 2 pt 9 ps 1.2
set output

set output 'precision.png'.suffix
set ylabel 'precision (higher is better)'
set title 'Precision vs compute'
plot  $line0 using 1:5 with linespoints title 'more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:5 with linespoints title 'paths, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 5 ps 1.2, \
     $line2 using 1:5 with linespoints title 'paths, ensemble(class_logit,self_similarity)' lc rgb '#ff7f0e' dt 1 lw 2 pt 5 ps 1.2, \
     $line3 using 1:5 with linespoints title 'paths, self_similarity' lc rgb '#2ca02c' dt 1 lw 2 pt 5 ps 1.2, \
     $line4 using 1:5 with linespoints title 'random, class_logit' lc rgb '#d62728' dt 1 lw 2 pt 7 ps 1.2, \
     $line5 using 1:5 with linespoints title 'random, ensemble(class_logit,self_similarity)' lc rgb '#9467bd' dt 1 lw 2 pt 7 ps 1.2, \
     $line6 using 1:5 with linespoints title 'random, self_similarity' lc rgb '#8c564b' dt 1 lw 2 pt 7 ps 1.2, \
     $line7 using 1:5 with linespoints title 'zero_order, class_logit' lc rgb '#e377c2' dt 1 lw 2 pt 9 ps 1.2, \
     $line8 using 1:5 with linespoints title 'zero_order, ensemble(class_logit,self_similarity)' lc rgb '#bcbd22' dt 1 lw 2 pt 9 ps 1.2, \
     $line9 using 1:5 with linespoints title 'zero_order, self_similarity' lc rgb '#17becf' dt 1 lw 2 pt 9 ps 1.2
set output

set output 'recall.png'.suffix
set ylabel 'recall (higher is better)'
set title 'Recall vs compute'
plot  $line0 using 1:6 with linespoints title 'more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:6 with linespoints title 'paths, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 5 ps 1.2, \
     $line2 using 1:6 with linespoints title 'paths, ensemble(class_logit,self_similarity)' lc rgb '#ff7f0e' dt 1 lw 2 pt 5 ps 1.2, \
     $line3 using 1:6 with linespoints title 'paths, self_similarity' lc rgb '#2ca02c' dt 1 lw 2 pt 5 ps 1.2, \
     $line4 using 1:6 with linespoints title 'random, class_logit' lc rgb '#d62728' dt 1 lw 2 pt 7 ps 1.2, \
     $line5 using 1:6 with linespoints title 'random, ensemble(class_logit,self_similarity)' lc rgb '#9467bd' dt 1 lw 2 pt 7 ps 1.2, \
     $line6 using 1:6 with linespoints title 'random, self_similarity' lc rgb '#8c564b' dt 1 lw 2 pt 7 ps 1.2, \
     $line7 using 1:6 with linespoints title 'zero_order, class_logit' lc rgb '#e377c2' dt 1 lw 2 pt 9 ps 1.2, \
     $line8 using 1:6 with linespoints title 'zero_order, ensemble(class_logit,self_similarity)' lc rgb '#bcbd22' dt 1 lw 2 pt 9 ps 1.2, \
     $line9 using 1:6 with linespoints title 'zero_order, self_similarity' lc rgb '#17becf' dt 1 lw 2 pt 9 ps 1.2
set output

set output 'accuracy.png'.suffix
set ylabel 'evaluator accuracy on the conditioning labels'
set title 'Accuracy vs compute'
plot  $line0 using 1:7 with linespoints title 'more denoising steps only' lc rgb 'black' dt 2 lw 2 pt 6 ps 1.2, \
     $line1 using 1:7 with linespoints title 'paths, class_logit' lc rgb '#1f77b4' dt 1 lw 2 pt 5 ps 1.2, \
     $line2 using 1:7 with linespoints title 'paths, ensemble(class_logit,self_similarity)' lc rgb '#ff7f0e' dt 1 lw 2 pt 5 ps 1.2, \
     $line3 using 1:7 with linespoints title 'paths, self_similarity' lc rgb '#2ca02c' dt 1 lw 2 pt 5 ps 1.2, \
     $line4 using 1:7 with linespoints title 'random, class_logit' lc rgb '#d62728' dt 1 lw 2 pt 7 ps 1.2, \
     $line5 using 1:7 with linespoints title 'random, ensemble(class_logit,self_similarity)' lc rgb '#9467bd' dt 1 lw 2 pt 7 ps 1.2, \
     $line6 using 1:7 with linespoints title 'random, self_similarity' lc rgb '#8c564b' dt 1 lw 2 pt 7 ps 1.2, \
     $line7 using 1:7 with linespoints title 'zero_order, class_logit' lc rgb '#e377c2' dt 1 lw 2 pt 9 ps 1.2, \
     $line8 using 1:7 with linespoints title 'zero_order, ensemble(class_logit,self_similarity)' lc rgb '#bcbd22' dt 1 lw 2 pt 9 ps 1.2, \
     $line9 using 1:7 with linespoints title 'zero_order, self_similarity' lc rgb '#17becf' dt 1 lw 2 pt 9 ps 1.2
set output
