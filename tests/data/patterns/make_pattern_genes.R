# Reference for secact.get.pattern_genes: SecAct R's SecAct.signaling.pattern.gene on a small
# weight matrix (R's weight.W: proteins x patterns).
#
# Run from this folder: Rscript make_pattern_genes.R   (written with R 4.2.2)
# Writes weights.tsv (the matrix, 17 significant digits) and pattern_genes.tsv (one line per
# matrix and pattern n: matrix, n, then the selected proteins in R's order, space separated).
# The rule below is SecAct R's function body (R/downstream.R), applied to the matrix itself
# instead of a SpaCET object.

pattern_gene <- function(weight.W, n)
{
  temp <- weight.W
  temp[,-n] <- 2*temp[,-n] # in case one column

  # identify secreted proteins with pattern n
  res <- weight.W[apply(temp,1,function(x) x[n]==max(x)),,drop=FALSE]
  res[order(res[,n],decreasing = TRUE),,drop=FALSE]
}

set.seed(1)
k <- 4
W <- matrix(rexp(40 * k), ncol = k)
rownames(W) <- sprintf("P%02d", 1:40)
colnames(W) <- as.character(1:k)
W[sample(40, 12), ] <- W[sample(40, 12), ] * 0.2          # weaker rows
W[1, ] <- c(2, 1, 1, 0.5)                                   # exactly twice the others: kept
W[2, ] <- c(2, 1 + 2^-40, 0.3, 0.1)                         # just under twice: dropped
W[3, ] <- 0                                                 # all zero: kept for every pattern
W[4, ] <- c(3, 0, 0, 0)                                     # ties in pattern 1 ...
W[5, ] <- c(3, 1, 0, 0)                                     # ... kept in input order
W[6, ] <- c(0.1, 0.1, 5, 2.5)                               # pattern 3, boundary
W[7, ] <- c(1, 1, 1, 1)                                     # never dominant
for (i in 8:12) W[i, 2] <- W[i, 2] + 6                      # pattern 2 proteins
W[13, ] <- c(0, 0, 0, 4)
W[14, ] <- c(0, 0, 0, 4)                                    # tie in pattern 4
one <- W[, 1, drop = FALSE]                                 # one pattern: every protein kept

mats <- list(W = W, one = one)
con <- file("weights.tsv", "w")
for (name in names(mats)) {
  M <- mats[[name]]
  for (i in seq_len(nrow(M))) {
    cat(name, rownames(M)[i], paste(sprintf("%.17g", M[i, ]), collapse = " "), sep = "\t", file = con)
    cat("\n", file = con)
  }
}
close(con)

con <- file("pattern_genes.tsv", "w")
for (name in names(mats)) {
  M <- mats[[name]]
  for (n in seq_len(ncol(M))) {
    res <- pattern_gene(M, n)
    cat(name, n, paste(rownames(res), collapse = " "), sep = "\t", file = con)
    cat("\n", file = con)
  }
}
close(con)
