#!/usr/bin/perl
# The core's statements prepared against a real PostgreSQL, own and upstream
# schema: the names and types of their result columns are those of the row
# layouts the renderers read (t/unit/core_row_layouts_test.cpp, run here with
# a database).

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/lib";

use Test::More;

use RelyLoop::Test;

RelyLoop::Test->timeout(240);

my $bin = $ENV{RELYLOOP_ROW_LAYOUTS_TEST}
    || RelyLoop::Test->root . '/build/cmake-' . ($ENV{RELYLOOP_VARIANT} || 'release')
    . '/core_row_layouts_test';
plan skip_all => "no $bin (unit tests not built)" unless -x $bin;

for my $kind (qw(own upstream)) {
    my $t = RelyLoop::Test->new(db_kind => $kind);
    $t->start_pg->migrate;
    local %ENV = (%ENV, ($t->asan ? $t->_san_env('row_layouts') : ()),
        RELYLOOP_TEST_PG_CONNINFO => $t->conninfo);
    my $out = qx{$bin 2>&1};
    is($?, 0, "$kind schema: every statement's result columns are its layouts'")
        or diag $out;
    like($out, qr/\[  PASSED  \] 3 tests/, "$kind schema: all three tests ran");
    unlike($out, qr/SKIPPED/, "$kind schema: nothing skipped");
}

done_testing;
