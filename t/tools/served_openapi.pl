#!/usr/bin/perl
# served_openapi.pl FILE: writes the OpenAPI document the built module serves at
# GET /api/v1/openapi.json (nginx + PostgreSQL from the test harness, on
# loopback, removed afterwards). ./build.sh lint feeds it to Redocly.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../lib";

use Test::More;    # the harness reports through Test::More
use RelyLoop::Test;

BEGIN { alarm 120 }

my $file = shift // die "usage: $0 FILE\n";
my $t = RelyLoop::Test->new;
$t->start_pg->migrate->start_nginx;
my $r = $t->http(GET => '/api/v1/openapi.json');
die "GET /api/v1/openapi.json: $r->{status}\n" unless $r->{status} == 200;
open my $fh, '>', $file or die "$file: $!\n";
print $fh $r->{body};
close $fh or die "$file: $!\n";
pass("GET /api/v1/openapi.json into $file");
$t->done;
