/*
 * Prints the core's statement table, one "name<TAB>nparams<TAB>sql" line per
 * statement (newlines in the SQL become spaces), through the public C API:
 * the benchmarks run exactly the SQL the module runs.
 */

#include <stdio.h>

#include <relyloop/core.h>

int
main(void)
{
    size_t                 i, n;
    const char            *p;
    const rl_statement_t  *st;

    n = rl_core_statements(&st);

    for (i = 0; i < n; i++) {
        printf("%s\t%d\t", st[i].name, st[i].nparams);

        for (p = st[i].sql; *p; p++) {
            putchar(*p == '\n' ? ' ' : *p);
        }

        putchar('\n');
    }

    return 0;
}
