# R's mean() and colMeans() of small vectors whose double sums depend on the order (for
# secact.core.spatial.r_mean / r_col_means, which SecAct.CCC.scST's p-values rest on).
# Run from this folder: Rscript make_r_means.R   (written with R 4.2.2 on x86-64 Linux,
# where R's long double is the 80-bit x87 type, as NumPy's longdouble there).
# r_means.tsv: case, values (space separated, 17 significant digits), mean, colMeans,
# ge (colMeans(values) >= mean(first permutation of the case), R's test in SecAct.CCC.scST).
set.seed(7)
cases <- list(
  c(0.1, 0.2, 0.7),
  c(0.7, 0.2, 0.1),
  c(0.2, 0.7, 0.1),
  c(1, 2^-60, -1),
  c(1e16, 1, -1e16, 1),
  c(3, 3, 3, 3, 3, 3, 3),
  rexp(25),
  rev(sort(rexp(1000) * 1e3)),
  c(rep(0.1, 9), 0.3),
  c(0.3, rep(0.1, 9))
)
ref <- c(1, 1, 1, 4, 5, 6, 7, 8, 9, 9)  # the case whose mean each colMeans is compared with
f17 <- function(v) sprintf("%.17g", v)
cat("case\tvalues\tmean\tcolMeans\tge\n")
for (k in seq_along(cases)) {
  x <- cases[[k]]
  cm <- colMeans(matrix(x, ncol = 1))
  cat(k, paste(f17(x), collapse = " "), f17(mean(x)), f17(cm), as.integer(cm >= mean(cases[[ref[k]]])),
      sep = "\t")
  cat("\n")
}
