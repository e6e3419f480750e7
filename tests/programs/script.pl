# script.pl - allocation-heavy Perl with deterministic output.
use strict;
use warnings;

my %h;
my $seed = 42;
sub rnd { $seed = ($seed * 1103515245 + 12345) % 2147483648; return $seed; }
for my $i (1 .. 200000) {
    my $k = sprintf("k%07d-%x", $i, rnd());
    $h{$k} = [ $i, "v" x ($i % 40), { n => $i } ];
    delete $h{ (sort keys %h)[0] } if $i % 20000 == 0;
}
my @keys = sort keys %h;
print "keys ", scalar(@keys), " first $keys[0] last $keys[-1]\n";
my $total = 0;
$total += $h{$_}[0] + length($h{$_}[1]) for @keys;
print "total $total\n";
my $text = join(" ", map { ("alpha", "beta", "gamma42", "delta")[ rnd() % 4 ] } 1 .. 200000);
my @m = ($text =~ /\b(\w+\d+)\b/g);
print "matches ", scalar(@m), "\n";
(my $t2 = $text) =~ s/a/AA/g;
print "length ", length($t2), "\n";
my @sorted = sort { $a <=> $b } map { rnd() % 1000000 } 1 .. 300000;
print "sorted $sorted[0] $sorted[150000] $sorted[-1]\n";
my $s = "";
$s .= chr(65 + $_ % 26) for 1 .. 1000000;
print "string ", length($s), " ", substr($s, 500000, 10), "\n";
