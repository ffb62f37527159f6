# SPDX-License-Identifier: MIT
# A fixed Perl workload for the allocator benchmark: hashes of arrays,
# string building, regular expressions, sort and join, the allocation mix of
# text-processing scripts. Debian's perl uses the system malloc. Prints a
# checksum of everything computed (the same under every allocator).
# Usage: perl perl_workload.pl [SCALE]
use strict;
use warnings;

my $scale = @ARGV ? $ARGV[0] : 1.0;
my $rounds = int(14 * $scale) || 1;
# Below one round's worth, the rounds get smaller instead.
my $lines = 14 * $scale >= 1 ? 20000 : int(20000 * 14 * $scale) || 500;
my $state = 7;

# Own PRNG: results must not depend on perl's rand().
sub lcg {
	$state = ($state * 1103515245 + 12345) % 2147483648;
	return $state;
}

my $checksum = 0;
for my $round (1 .. $rounds) {
	my %index;
	my @lines;
	for my $i (1 .. $lines) {
		my $k = lcg();
		my $line = sprintf("id=%d key=%x words=%s", $i, $k,
				   join(",", map { "w" . (($k >> $_) & 63) } (0, 6, 12, 18)));
		push @lines, $line;
	}
	for my $line (@lines) {
		next unless $line =~ /^id=(\d+) key=([0-9a-f]+) words=(.*)$/;
		my ($id, $key, $words) = ($1, $2, $3);
		for my $w (split /,/, $words) {
			push @{ $index{$w} }, $id;
		}
	}
	my $text = "";
	for my $w (sort keys %index) {
		my @ids = sort { $a <=> $b } @{ $index{$w} };
		$text .= $w . ":" . scalar(@ids) . ";";
		$checksum = ($checksum * 31 + $ids[0] + $ids[-1] + scalar(@ids)) % 4294967291;
	}
	my @shuffled = sort { ($a ^ 0x5bd1) <=> ($b ^ 0x5bd1) } map { length($_) * 7919 % 10007 } @lines;
	$checksum = ($checksum + length($text) + $shuffled[0] + $shuffled[-1]) % 4294967291;
}
printf("result workload=perl checksum=%016x rounds=%d\n", $checksum, $rounds);
