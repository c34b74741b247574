#!/usr/bin/perl
# Verify the DKIM signatures of the message on stdin with Mail::DKIM (an implementation
# independent of dkimpy), looking keys up only at the DNS server on 127.0.0.1:PORT.
# Prints one line per signature, "pass" / "fail (reason)" / ..., then the overall result.
# Usage: perl mail_dkim_verify.pl PORT < message.eml
use strict;
use warnings;
use Mail::DKIM::Verifier;
use Mail::DKIM::DNS;
use Net::DNS::Resolver;

my $port = shift @ARGV or die "usage: $0 PORT < message\n";
Mail::DKIM::DNS::resolver(Net::DNS::Resolver->new(
    nameservers => ['127.0.0.1'], port => $port, recurse => 0, udp_timeout => 5, retry => 1,
));
my $dkim = Mail::DKIM::Verifier->new();
binmode STDIN;
while (my $line = <STDIN>) {
    $line =~ s/\r?\n\z/\r\n/;
    $dkim->PRINT($line);
}
$dkim->CLOSE;
foreach my $signature ($dkim->signatures) {
    print "signature: ", $signature->result_detail, "\n";
}
print "result: ", $dkim->result_detail, "\n";
