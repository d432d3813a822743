# Reads `go test -v` output and prints, for each test that failed, the last
# lines it logged. The suite runs its tests in parallel, so their lines
# interleave and a failure's message can sit far above the end of the log;
# CI keeps only the end. `=== RUN/PAUSE/CONT/NAME` headers say whose lines
# follow.
/^=== (RUN|PAUSE|CONT|NAME) / { current = $3; next }
/^ *--- FAIL: / { failed[$3] = 1; order[++n] = $3; next }
/^ *--- (PASS|SKIP): / { next }
/^    / && current != "" {
  count[current]++
  lines[current, count[current]] = $0
}
END {
  if (n == 0) exit
  printf "\n=== failed tests and their last %d lines\n", keep
  for (i = 1; i <= n; i++) {
    name = order[i]
    printf "\n--- %s\n", name
    first = count[name] > keep ? count[name] - keep + 1 : 1
    for (j = first; j <= count[name]; j++) print lines[name, j]
  }
}
