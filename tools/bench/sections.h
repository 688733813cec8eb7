/* The sections of the benchmark; each adds its rows to the table. */
#ifndef ARBOR_BENCH_SECTIONS_H
#define ARBOR_BENCH_SECTIONS_H

void	bench_throughput(void);	/* tput.c */
void	bench_python(void);	/* tput.c */
/* Section 1's row of n worker pairs (pairs.c); reference ends its label. */
void	bench_pairs(int n, const char *reference);
void	bench_affinity(void);	/* affinity.c */
/* Binds sessions 0..n-1 (load_session_id's names) on a: one execute in
 * each, then checks `stats` (affinity.c). */
struct arbord;
void	bind_sessions(const struct arbord *a, int n);
void	bench_instructions(void);	/* instr.c */
void	bench_restart(void);	/* restart.c */
void	bench_scale(void);	/* scale.c */

#endif
