# Reference for secact.tl.ccc_spatial(rng="R"): SecAct R's SecAct.CCC.scST on a small
# simulated single-cell spatial data set.
#
# Run from this folder: Rscript make_ccc_spatial.R   (written with R 4.2.2, Matrix, RANN 2.6.1)
#
# SecAct R itself is not installed here: ccc_scst() below is SecAct R's SecAct.CCC.scST
# (R/downstream.R) with its helpers (R/ifun.R: sweep_sparse, normalize_log_sparse,
# find_neighbors, compute_spatial_correlation) copied statement for statement, taking the
# SpaCET object's parts as arguments (counts, coordinates, cell types, activity z-scores).
# Left out: transferSymbol / rm_duplicates (the gene names here are symbols, unique), the
# mouse gene mapping, and parallel::mclapply (lapply: each type pair sets its own seed, so
# the result is the same).
#
# The cells: a jittered 20 x 20 grid 10 um apart, four common types and two rare ones (3 cells
# each, side by side). Inputs written: counts.tsv (cells x genes, raw counts), cells.tsv (cell, x, y, cell_type),
# activity.tsv (cells x proteins, z-scores, 17 significant digits).
# Outputs written: ccc.tsv (R's SecretedProteinCCC table with its defaults, radius 15: row
# name, sender, secretedProtein, receiver, sender_count, receiver_count,
# neighboringCellPairs, communicatingCellPairs, ratio, pv, pv.adj), ccc_all.tsv (the same
# with ratio_cutoff = 0 and padj_cutoff = 1.01: every scored row) and corr.tsv (R's ccc.SP:
# protein, r, p, padj), numbers with 17 significant digits.

suppressPackageStartupMessages(library(Matrix))
stopifnot(identical(RNGkind(), c("Mersenne-Twister", "Inversion", "Rejection")))

# ---- SecAct R helpers (R/ifun.R) ----------------------------------------------------------
sweep_sparse <- function(m, margin, stats, fun)
{
  f <- match.fun(fun)

  if(margin==1)
  {
    idx <- m@i + 1
  }else{
    if(inherits(m, "dgCMatrix"))
    {
      idx <- rep(1:m@Dim[2], diff(m@p))
    }else{
      idx <- m@j + 1
    }
  }

  m@x <- f(m@x, stats[idx])
  m
}

normalize_log_sparse <- function(expr, scale.factor)
{
  stats <- Matrix::colSums(expr)
  expr <- sweep_sparse(expr, 2, stats, "/")
  expr@x <- expr@x * scale.factor
  expr@x <- log2(expr@x + 1)
  expr
}

find_neighbors <- function(coordinate_mat, radius, k = 100)
{
  nn_result <- RANN::nn2(
    coordinate_mat[,c("coordinate_x_um","coordinate_y_um")],
    k=k, searchtype="radius", radius=radius
  )

  neighbor_indices <- nn_result$nn.idx
  neighbor_distances <- nn_result$nn.dists

  i <- rep(1:nrow(neighbor_indices), each=ncol(neighbor_indices))
  j <- as.vector(t(neighbor_indices))
  x <- as.vector(t(neighbor_distances))

  valid <- x <= radius & x > 0
  list(i=i[valid], j=j[valid], x=x[valid], n=nrow(neighbor_indices))
}

compute_spatial_correlation <- function(act_new, exp_new, exp_new_aggr)
{
  genes <- rownames(act_new)
  n <- length(genes)
  rs <- numeric(n)
  ps <- numeric(n)
  names(rs) <- names(ps) <- genes

  for(i in seq_len(n))
  {
    gene <- genes[i]
    if(gene %in% rownames(exp_new))
    {
      cor_res <- suppressWarnings(cor.test(act_new[gene,], exp_new_aggr[gene,], method="spearman"))
      rs[i] <- cor_res$estimate
      ps[i] <- cor_res$p.value
    }else{
      rs[i] <- NA
      ps[i] <- NA
    }
  }
  data.frame(r=rs, p=ps, padj=p.adjust(ps, method="BH"))
}

# ---- SecAct R's SecAct.CCC.scST (R/downstream.R), object parts as arguments --------------
ccc_scst <- function(counts, coordinate_mat, cellType_vec, act,
                     scale.factor = 1000, radius = 20, ratio_cutoff = 0.2, padj_cutoff = 0.01)
{
  cellType_vec <- as.character(cellType_vec)

  exp <- counts
  exp <- normalize_log_sparse(exp, scale.factor)

  nb <- find_neighbors(coordinate_mat, radius)

  distance_mat <- Matrix::sparseMatrix(i=nb$i, j=nb$j, x=nb$x, dims=c(nb$n, nb$n), repr="T")
  rownames(distance_mat) <- rownames(coordinate_mat)
  colnames(distance_mat) <- rownames(coordinate_mat)

  weights <- distance_mat
  weights@x <- as.numeric(weights@x>0)

  act[act<0] <- 0

  act_new <- act[,colnames(weights)]
  exp_new <- exp[,colnames(weights)]

  exp_new_aggr <- exp_new %*% weights

  corr <- compute_spatial_correlation(act_new, exp_new, exp_new_aggr)

  corr_genes <- rownames(corr[!is.na(corr[,"r"])&corr[,"r"]>0.05&corr[,"padj"]<0.01,])

  cellTypes <- unique(cellType_vec)
  cellGroups <- split(seq_along(cellType_vec), cellType_vec)

  cellTypePair1 <- rep(cellTypes, each=length(cellTypes))
  cellTypePair2 <- rep(cellTypes, length(cellTypes))

  cellTypePair <- cbind(cellTypePair1, cellTypePair2)
  cellTypePair <- cellTypePair[cellTypePair1>cellTypePair2,]
  rownames(cellTypePair) <- paste0(cellTypePair[,1],"_",cellTypePair[,2])

  olp <- corr_genes

  Tmat <- data.frame(i=nb$i, j=nb$j)

  compute_pair <- function(m)
  {
    cellType1 <- cellTypePair[m,1]
    cellType2 <- cellTypePair[m,2]

    cellType1_cells <- cellGroups[[cellType1]]
    cellType2_cells <- cellGroups[[cellType2]]

    # all neighboring cell pair
    Tmat_cellTypePair <- Tmat[Tmat[,"i"]%in%cellType1_cells & Tmat[,"j"]%in%cellType2_cells, ,drop=F]
    n_neighbor <- nrow(Tmat_cellTypePair)

    # ratio neighboring cells vs all cells
    if(
      length(unique(Tmat_cellTypePair[,1]))/length(cellType1_cells) < 0.05 &
      length(unique(Tmat_cellTypePair[,2]))/length(cellType2_cells) < 0.05)
    return(NULL)

    set.seed(123)
    Tmat_background <- data.frame(
      i=sample(cellType1_cells, n_neighbor*1000, replace=T),
      j=sample(cellType2_cells, n_neighbor*1000, replace=T)
    )

    out <- list()

    for(SP in olp)
    {
      exp_SP <- exp[SP,]
      act_SP <- act[SP,]

      # exp(1) * act(2)
      CCC_vec <- exp_SP[Tmat_cellTypePair[,1]] * act_SP[Tmat_cellTypePair[,2]]

      # ratio interacting pairs vs neighboring pairs
      n_communication <- sum(CCC_vec>0)
      posRatio <- n_communication/n_neighbor

      if(posRatio > ratio_cutoff)
      {
        CCC_raw <- mean(CCC_vec)

        CCC1000_vec <- exp_SP[Tmat_background[,1]] * act_SP[Tmat_background[,2]]
        CCC1000 <- colMeans(matrix(CCC1000_vec, nrow = n_neighbor))

        out[[paste0(cellType1,"_",SP,"_",cellType2)]] <- c(
          sender = cellType1,
          secretedProtein = SP,
          receiver = cellType2,
          sender_count = length(cellType1_cells),
          receiver_count = length(cellType2_cells),
          neighboringCellPairs = n_neighbor,
          communicatingCellPairs = n_communication,
          ratio = posRatio,
          pv = (sum(CCC1000 >= CCC_raw) + 1) / 1001
        )
      }


      # exp(2) * act(1)
      CCC_vec <- exp_SP[Tmat_cellTypePair[,2]] * act_SP[Tmat_cellTypePair[,1]]

      n_communication <- sum(CCC_vec>0)
      posRatio <- n_communication/n_neighbor

      if(posRatio > ratio_cutoff)
      {
        CCC_raw <- mean(CCC_vec)

        CCC1000_vec <- exp_SP[Tmat_background[,2]] * act_SP[Tmat_background[,1]]
        CCC1000 <- colMeans(matrix(CCC1000_vec, nrow = n_neighbor))

        out[[paste0(cellType2,"_",SP,"_",cellType1)]] <- c(
          sender = cellType2,
          secretedProtein = SP,
          receiver = cellType1,
          sender_count = length(cellType2_cells),
          receiver_count = length(cellType1_cells),
          neighboringCellPairs = n_neighbor,
          communicatingCellPairs = n_communication,
          ratio = posRatio,
          pv = (sum(CCC1000 >= CCC_raw) + 1) / 1001
        )
      }

    } # SP

    return(out)
  } #m

  results <- lapply(1:nrow(cellTypePair), compute_pair)
  ccc_list <- do.call(c, results)
  ccc <- do.call(rbind, ccc_list)
  ccc <- as.data.frame(ccc)
  ccc[,4:9] <- apply(ccc[,4:9], 2, as.numeric)

  ccc <- cbind(ccc, pv.adj=p.adjust(ccc[,"pv"], method="BH"))
  ccc <- ccc[ccc[,"pv.adj"]<padj_cutoff,]

  ccc <- ccc[order(ccc[,"pv.adj"]),]

  list(ccc = ccc, corr = corr)
}

# ---- simulated input ----------------------------------------------------------------------
set.seed(2026)
side <- 20
xy <- expand.grid(x = (1:side) * 10, y = (1:side) * 10)
xy <- xy + runif(2 * nrow(xy), -2, 2)
n <- nrow(xy)
cells <- sprintf("cell%03d", 1:n)
types <- c("Tumor", "Fibro", "Tcell", "Macro")
cell_type <- sample(types, n, replace = TRUE, prob = c(0.4, 0.25, 0.2, 0.15))
# two rare types side by side (3 cells each): type pairs with a handful of neighbouring pairs,
# whose background sets often repeat the observed pairs (ties decided by R's arithmetic)
rare <- which(xy$x > 45 & xy$x < 75 & xy$y > 45 & xy$y < 65)
stopifnot(length(rare) == 6)
cell_type[rare] <- c("Bcell", "Mast", "Bcell", "Mast", "Bcell", "Mast")

proteins <- c("IFNG", "TGFB1", "IL6", "CXCL12", "SPP1", "VEGFA")
fillers <- sprintf("GENE%02d", 1:14)
counts <- matrix(rpois(n * 20, 3), nrow = 20, dimnames = list(c(proteins, fillers), cells))
counts[proteins, ] <- rpois(length(proteins) * n, 0.3)
boost <- function(gene, type, lambda) {
  sel <- cell_type == type
  counts[gene, sel] <<- rpois(sum(sel), lambda)
}
boost("IFNG", "Tcell", 4)
boost("TGFB1", "Fibro", 5)
boost("IL6", "Macro", 4)
boost("CXCL12", "Fibro", 2)
boost("SPP1", "Macro", 1.5)
counts["VEGFA", ] <- rpois(n, 1)

# activity answers the expression of the neighbours (radius 15), plus noise; IL2 has no gene
norm <- log2(sweep(counts, 2, colSums(counts), "/") * 1000 + 1)
d <- as.matrix(dist(xy))
near <- (d <= 15 & d > 0) * 1
act <- rbind(norm[proteins, ] %*% near, IL2 = 0)
act <- t(scale(t(act)))
act[is.na(act)] <- 0
act <- 0.7 * act + matrix(rnorm(length(act)), nrow = nrow(act))
act["VEGFA", ] <- rnorm(n)  # no spatial signal
dimnames(act) <- list(c(proteins, "IL2"), cells)

coordinate_mat <- data.frame(coordinate_x_um = xy$x, coordinate_y_um = xy$y, row.names = cells)

write.table(data.frame(cell = cells, t(counts), check.names = FALSE), "counts.tsv", sep = "\t",
            quote = FALSE, row.names = FALSE)
write.table(data.frame(cell = cells, x = sprintf("%.17g", xy$x), y = sprintf("%.17g", xy$y),
                       cell_type = cell_type), "cells.tsv", sep = "\t", quote = FALSE, row.names = FALSE)
act_out <- data.frame(cell = cells, apply(t(act), 2, function(v) sprintf("%.17g", v)), check.names = FALSE)
write.table(act_out, "activity.tsv", sep = "\t", quote = FALSE, row.names = FALSE)

# ---- SecAct.CCC.scST on it ----------------------------------------------------------------
# read back what was written, so R runs on exactly the stored input
counts_in <- as.matrix(read.delim("counts.tsv", row.names = 1, check.names = FALSE))
cells_in <- read.delim("cells.tsv", row.names = 1, colClasses = c("character", "numeric", "numeric", "character"))
act_in <- as.matrix(read.delim("activity.tsv", row.names = 1, check.names = FALSE))
stopifnot(identical(unname(as.matrix(cells_in[, 1:2])), unname(as.matrix(xy))))
coordinate_mat <- data.frame(coordinate_x_um = cells_in$x, coordinate_y_um = cells_in$y, row.names = rownames(cells_in))

run <- function(ratio_cutoff, padj_cutoff) ccc_scst(
  as(Matrix(t(counts_in), sparse = TRUE), "CsparseMatrix"),
  coordinate_mat,
  cells_in$cell_type,
  t(act_in),
  scale.factor = 1000, radius = 15, ratio_cutoff = ratio_cutoff, padj_cutoff = padj_cutoff
)

f17 <- function(v) sprintf("%.17g", v)
write_ccc <- function(ccc, path) {
  ccc_out <- data.frame(
    link = rownames(ccc), ccc[, 1:3],
    sender_count = ccc$sender_count, receiver_count = ccc$receiver_count,
    neighboringCellPairs = ccc$neighboringCellPairs, communicatingCellPairs = ccc$communicatingCellPairs,
    ratio = f17(ccc$ratio), pv = f17(ccc$pv), pv.adj = f17(ccc$pv.adj), check.names = FALSE
  )
  write.table(ccc_out, path, sep = "\t", quote = FALSE, row.names = FALSE)
}
out <- run(0.2, 0.01)
write_ccc(out$ccc, "ccc.tsv")
all <- run(0, 1.01)
write_ccc(all$ccc, "ccc_all.tsv")
corr <- out$corr
write.table(data.frame(protein = rownames(corr), r = f17(corr$r), p = f17(corr$p), padj = f17(corr$padj)),
            "corr.tsv", sep = "\t", quote = FALSE, row.names = FALSE)
cat(nrow(out$ccc), "links;", nrow(all$ccc), "rows scored;",
    sum(!is.na(corr$r) & corr$r > 0.05 & corr$padj < 0.01), "proteins kept\n")
