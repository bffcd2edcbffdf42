# Reference draws of R's set.seed / runif / sample.int / sample for secact.core.rsample.
#
# Run from this folder with R >= 3.6 (default RNGkind: Mersenne-Twister, Inversion, Rejection):
#   Rscript make_rsample.R > rsample.tsv
# Written with R 4.2.2. One line per case (tab separated):
#   kind  seed  n  size  replace  first  sum  wsum  next
# kind: "runif" (set.seed(seed); runif(size)), "sample.int" (set.seed(seed);
# sample.int(n, size, replace)), "sample" (set.seed(seed); sample(n): a permutation, size = n),
# "ccc" (set.seed(seed); sample(1:n * 3, size, TRUE) then sample(1:(n + 5) * 2, size, TRUE),
# SecAct.CCC.scST's two background draws, first and second concatenated).
# first: the first 12 values (space separated); sum: sum of all values; wsum: an order-sensitive
# checksum of all values, sum((x %% 65521) * (seq_along(x) %% 65521)) (exact in doubles);
# next: runif(1) right after the case's draws (checks how many uniforms they used).
# Uniforms are written with 17 significant digits and checked as integers y = u * 2^32.

stopifnot(getRversion() >= "3.6.0", identical(RNGkind(), c("Mersenne-Twister", "Inversion", "Rejection")))

fmt <- function(x) sprintf("%.17g", x)
emit <- function(kind, seed, n, size, replace, x) {
  force(x)  # draw x before the next runif(1)
  if (kind == "runif") x <- x * 2^32  # integers, exact
  nxt <- runif(1)
  cat(kind, seed, n, size, as.integer(replace), paste(fmt(head(x, 12)), collapse = " "),
      fmt(sum(x)), fmt(sum((x %% 65521) * (seq_along(x) %% 65521))), fmt(nxt), sep = "\t")
  cat("\n")
}

seeds <- c(0, 1, 42, 123, 2024, -1, -123456789, 2147483647, 987654321)
cat("kind\tseed\tn\tsize\treplace\tfirst\tsum\twsum\tnext\n")
for (seed in seeds) {
  set.seed(seed)
  emit("runif", seed, 0, 2000, FALSE, runif(2000))
  for (n in c(1, 2, 3, 7, 10, 100, 257, 1000, 32768, 65535, 65536, 65537, 100000, 2^20 + 3,
              123456789, 2^31 - 1)) {
    set.seed(seed)
    emit("sample.int", seed, n, 1000, TRUE, sample.int(n, 1000, replace = TRUE))
    k <- min(n, 500)
    set.seed(seed)
    emit("sample.int", seed, n, k, FALSE, sample.int(n, k, replace = FALSE))
  }
  for (n in c(1, 2, 5, 100, 1000, 5000)) {
    set.seed(seed)
    emit("sample", seed, n, n, FALSE, sample(n))
  }
  # sample2 (useHash): n > 1e7, no replacement, size <= n / 2
  set.seed(seed)
  emit("sample.int", seed, 2e7, 3000, FALSE, sample.int(2e7, 3000))
  # SecAct.CCC.scST's background: two draws with replacement from cell index vectors
  for (n in c(2, 40, 333)) {
    size <- 37 * 100
    set.seed(seed)
    a <- sample(seq_len(n) * 3, size, replace = TRUE)
    b <- sample(seq_len(n + 5) * 2, size, replace = TRUE)
    emit("ccc", seed, n, size, TRUE, c(a, b))
  }
}
