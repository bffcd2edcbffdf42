# Reference outputs for secact.tl.coxph and secact.pl.survival from R's survival package.
#
#   cd tests/data/coxph && Rscript make_reference.R
#
# Simulated cohort (80 samples x 31 proteins, times rounded to create ties for Efron's rule)
# with clinical covariates (numeric age, 0/1 sex, character stage) and proteins whose fit
# fails: P28 constant (singular: coefficient NA), P29 = -Time (perfect separation: no
# convergence, a warning), P30 with missing values (rows dropped for that protein, as
# coxph's na.omit does), P31 separating (a group without events: infinite coefficient, a
# warning). Numbers are written with 17 significant digits.
#
# The per-protein fit follows SecAct R's SecAct.coxph.regression (R/downstream.R):
# coxph(Surv(Time, Event) ~ ., data = cbind(clinical, Act = activity)) with its defaults
# (Efron ties, coxph.control()), NA where coxph errors or warns. The best-separation search
# follows SecAct R's CoxPH_best_separation (margin 5) as used by SecAct.survival.plot.
library(survival)
set.seed(20240519)

n <- 80
p <- 30
samples <- sprintf("S%02d", 1:n)
proteins <- sprintf("P%02d", 1:p)
act <- matrix(rnorm(p * n), p, n, dimnames = list(proteins, samples))
age <- round(rnorm(n, 60, 10))
sex <- rbinom(n, 1, 0.5)
stage <- sample(c("I", "II", "III"), n, replace = TRUE)
hazard <- exp(0.9 * act["P01", ] - 0.7 * act["P02", ] + 0.03 * (age - 60) + 0.4 * (stage == "III"))
t_event <- rexp(n, hazard)
t_cens <- rexp(n, 0.35)
Time <- round(pmin(t_event, t_cens), 1) + 0.1
Event <- as.integer(t_event <= t_cens)

act["P27", ] <- rbinom(n, 1, 0.4)             # a 0/1 activity (not centred by coxph)
act["P28", ] <- 0                             # constant: singular, coefficient NA
act["P29", ] <- -Time                         # perfect separation: no convergence
act["P30", c(3, 17, 44)] <- NA                # missing: those samples dropped for P30
# P31: 1 for a third of the censored samples, 0 elsewhere: a group without events, its
# coefficient goes to -Inf and coxph warns "Loglik converged before variable ..."
act <- rbind(act, P31 = as.numeric(Event == 0 & seq_len(n) %% 3 == 0))

clinical <- data.frame(Time = Time, Event = Event, age = age, sex = sex, stage = stage,
                       row.names = samples, stringsAsFactors = FALSE)
# the tables share 77 samples: clinical has two the activity lacks, and the reverse
clinical <- clinical[c(sample(3:n), 1, 2), ]
rownames(clinical)[79:80] <- c("X01", "X02")
act_out <- act[, c(samples[-(1:2)], "S01")]
colnames(act_out)[78] <- "Y01"

fmt <- function(df) {
  out <- df
  for (j in seq_along(out)) if (is.numeric(out[[j]])) out[[j]] <- ifelse(is.na(out[[j]]), "NA", sprintf("%.17g", out[[j]]))
  out
}
write.table(fmt(as.data.frame(act_out)), "activity.tsv", sep = "\t", quote = FALSE, col.names = NA)
write.table(fmt(clinical), "clinical.tsv", sep = "\t", quote = FALSE, col.names = NA)

coxph_regression <- function(mat, surv, ties = "efron") {
  mat <- t(mat)
  olp <- intersect(rownames(surv), rownames(mat))
  X <- surv[olp, , drop = FALSE]
  Y <- mat[olp, , drop = FALSE]
  out <- data.frame(row.names = colnames(Y))
  for (g in colnames(Y)) {
    comb <- cbind(X, Act = Y[, g])
    why <- ""
    fit <- tryCatch(coxph(Surv(Time, Event) ~ ., data = comb, ties = ties),
                    error = function(e) { why <<- conditionMessage(e); NULL },
                    warning = function(w) { why <<- conditionMessage(w); NULL })
    if (is.null(fit)) {
      out[g, c("z", "pvalue", "coef", "se")] <- NA
      out[g, "n"] <- NA
    } else {
      co <- summary(fit)$coefficients
      out[g, "z"] <- co["Act", "z"]
      out[g, "pvalue"] <- co["Act", "Pr(>|z|)"]
      out[g, "coef"] <- co["Act", "coef"]
      out[g, "se"] <- co["Act", "se(coef)"]
      out[g, "n"] <- fit$n
      out[g, "iter"] <- fit$iter
    }
    out[g, "warning"] <- gsub("[\t\n]", " ", why)
  }
  out
}

write.table(fmt(coxph_regression(act_out, clinical[, c("Time", "Event")])),
            "coxph_nocov.tsv", sep = "\t", quote = FALSE, col.names = NA)
write.table(fmt(coxph_regression(act_out, clinical)),
            "coxph_cov.tsv", sep = "\t", quote = FALSE, col.names = NA)
write.table(fmt(coxph_regression(act_out, clinical[, c("Time", "Event", "age")])),
            "coxph_age.tsv", sep = "\t", quote = FALSE, col.names = NA)
write.table(fmt(coxph_regression(act_out, clinical[, c("Time", "Event", "age")], ties = "breslow")),
            "coxph_age_breslow.tsv", sep = "\t", quote = FALSE, col.names = NA)

# a protein collinear with a covariate (0.5 * age - 30): singular once age is adjusted for (NA,
# no warning), an ordinary fit without covariates
collinear <- matrix(0.5 * clinical$age - 30, 1, nrow(clinical), dimnames = list("P32", rownames(clinical)))
rows <- list(none = c("Time", "Event"), age = c("Time", "Event", "age"), all = colnames(clinical))
out <- do.call(rbind, lapply(names(rows), function(r) {
  x <- coxph_regression(collinear, clinical[, rows[[r]]])
  rownames(x) <- r
  x
}))
write.table(fmt(out), "coxph_collinear.tsv", sep = "\t", quote = FALSE, col.names = NA)

# ---- best separation (SecAct.survival.plot) ------------------------------------------------
best_separation <- function(B, y, margin) {
  nc <- ncol(B)
  fail <- FALSE
  fit <- tryCatch(coxph(y ~ ., data = B), error = function(e) fail <<- TRUE, warning = function(w) fail <<- TRUE)
  if (fail) return(c(z = NA, thres = NA, z_opt = NA))
  z0 <- summary(fit)$coef[nc, "z"]
  arr <- B[, nc]
  v <- sort(arr)
  z_opt <- NA; thres <- NA
  for (i in (margin + 1):(nrow(B) - margin)) {
    B[, nc] <- as.numeric(arr >= v[i])
    fail <- FALSE
    fit <- tryCatch(coxph(y ~ ., data = B), error = function(e) fail <<- TRUE, warning = function(w) fail <<- TRUE)
    if (fail) next
    z <- summary(fit)$coef[nc, "z"]
    if (is.na(z)) next
    if (is.na(z_opt) || (z0 > 0 && z > z_opt) || (z0 <= 0 && z < z_opt)) { z_opt <- z; thres <- v[i] }
  }
  c(z = z0, thres = thres, z_opt = z_opt)
}

mat <- t(act_out)
olp <- intersect(rownames(clinical), rownames(mat))
best <- data.frame()
km <- data.frame()
# numeric covariates only: SecAct R reads the activity's row of the coefficient table by
# position (ncol(B)), which is another coefficient once a factor expands to dummy columns
for (cov in c("none", "age+sex")) {
  surv <- clinical[olp, , drop = FALSE]
  surv <- if (cov == "none") surv[, c("Time", "Event")] else surv[, c("Time", "Event", "age", "sex")]
  y <- Surv(surv$Time, surv$Event)
  B <- surv[, -(1:2), drop = FALSE]
  for (g in c("P01", "P02", "P05")) {
    B$pivot <- mat[olp, g]
    r <- best_separation(B, y, 5)
    cutoff <- round(r[["thres"]], 3)
    high <- mat[olp, g] > cutoff
    lr <- survdiff(Surv(Time, Event) ~ high, data = surv)
    key <- paste(g, cov, sep = ":")
    best[key, "protein"] <- g
    best[key, "covariates"] <- cov
    best[key, "z"] <- r[["z"]]
    best[key, "threshold"] <- r[["thres"]]
    best[key, "z_opt"] <- r[["z_opt"]]
    best[key, "cutoff"] <- cutoff
    best[key, "n_high"] <- sum(high)
    best[key, "n_low"] <- sum(!high)
    best[key, "logrank_chisq"] <- lr$chisq
    best[key, "logrank_p"] <- pchisq(lr$chisq, 1, lower.tail = FALSE)
    if (cov == "none") {
      fit <- survfit(Surv(Time, Event) ~ high, data = surv)
      s <- summary(fit, censored = TRUE)
      km <- rbind(km, data.frame(protein = g, group = ifelse(grepl("TRUE", s$strata), "high", "low"),
                                 time = s$time, n_risk = s$n.risk, n_event = s$n.event,
                                 n_censor = s$n.censor, surv = s$surv))
    }
  }
}
write.table(fmt(best), "best_separation.tsv", sep = "\t", quote = FALSE, col.names = NA)
write.table(fmt(km), "kaplan_meier.tsv", sep = "\t", quote = FALSE, row.names = FALSE)
writeLines(c(R.version.string, paste("survival", packageVersion("survival"))), "versions.txt")
