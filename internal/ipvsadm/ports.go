package ipvsadm

import "github.com/gvs-lb/gvs/internal/ipvs"

// servicePort is one /etc/services entry: a port's name and aliases for a
// protocol.
type servicePort struct {
	port    uint16
	proto   ipvs.Protocol
	name    string
	aliases []string
}

// services are the common entries of Debian's /etc/services (netbase), so
// that gvsadm names ports as ipvsadm does on Debian without reading the
// host's files: listings stay the same on every machine.
var services = []servicePort{
	{port: 20, proto: ipvs.TCP, name: "ftp-data"},
	{port: 21, proto: ipvs.TCP, name: "ftp"},
	{port: 21, proto: ipvs.UDP, name: "fsp", aliases: []string{"fspd"}},
	{port: 22, proto: ipvs.TCP, name: "ssh"},
	{port: 23, proto: ipvs.TCP, name: "telnet"},
	{port: 25, proto: ipvs.TCP, name: "smtp", aliases: []string{"mail"}},
	{port: 53, proto: ipvs.TCP, name: "domain"},
	{port: 53, proto: ipvs.UDP, name: "domain"},
	{port: 67, proto: ipvs.UDP, name: "bootps"},
	{port: 68, proto: ipvs.UDP, name: "bootpc"},
	{port: 69, proto: ipvs.UDP, name: "tftp"},
	{port: 80, proto: ipvs.TCP, name: "http", aliases: []string{"www"}},
	{port: 88, proto: ipvs.TCP, name: "kerberos", aliases: []string{"kerberos5", "krb5", "kerberos-sec"}},
	{port: 88, proto: ipvs.UDP, name: "kerberos", aliases: []string{"kerberos5", "krb5", "kerberos-sec"}},
	{port: 110, proto: ipvs.TCP, name: "pop3", aliases: []string{"pop-3"}},
	{port: 111, proto: ipvs.TCP, name: "sunrpc", aliases: []string{"portmapper"}},
	{port: 111, proto: ipvs.UDP, name: "sunrpc", aliases: []string{"portmapper"}},
	{port: 119, proto: ipvs.TCP, name: "nntp", aliases: []string{"readnews", "untp"}},
	{port: 123, proto: ipvs.UDP, name: "ntp"},
	{port: 143, proto: ipvs.TCP, name: "imap2", aliases: []string{"imap"}},
	{port: 161, proto: ipvs.TCP, name: "snmp"},
	{port: 161, proto: ipvs.UDP, name: "snmp"},
	{port: 162, proto: ipvs.TCP, name: "snmp-trap", aliases: []string{"snmptrap"}},
	{port: 162, proto: ipvs.UDP, name: "snmp-trap", aliases: []string{"snmptrap"}},
	{port: 179, proto: ipvs.TCP, name: "bgp"},
	{port: 389, proto: ipvs.TCP, name: "ldap"},
	{port: 389, proto: ipvs.UDP, name: "ldap"},
	{port: 443, proto: ipvs.TCP, name: "https"},
	{port: 443, proto: ipvs.UDP, name: "https"},
	{port: 445, proto: ipvs.TCP, name: "microsoft-ds"},
	{port: 465, proto: ipvs.TCP, name: "submissions", aliases: []string{"ssmtp", "smtps", "urd"}},
	{port: 514, proto: ipvs.TCP, name: "shell", aliases: []string{"cmd", "syslog"}},
	{port: 514, proto: ipvs.UDP, name: "syslog"},
	{port: 587, proto: ipvs.TCP, name: "submission"},
	{port: 636, proto: ipvs.TCP, name: "ldaps"},
	{port: 636, proto: ipvs.UDP, name: "ldaps"},
	{port: 853, proto: ipvs.TCP, name: "domain-s"},
	{port: 853, proto: ipvs.UDP, name: "domain-s"},
	{port: 873, proto: ipvs.TCP, name: "rsync"},
	{port: 993, proto: ipvs.TCP, name: "imaps"},
	{port: 995, proto: ipvs.TCP, name: "pop3s"},
	{port: 1194, proto: ipvs.TCP, name: "openvpn"},
	{port: 1194, proto: ipvs.UDP, name: "openvpn"},
	{port: 1812, proto: ipvs.TCP, name: "radius"},
	{port: 1812, proto: ipvs.UDP, name: "radius"},
	{port: 1813, proto: ipvs.TCP, name: "radius-acct", aliases: []string{"radacct"}},
	{port: 1813, proto: ipvs.UDP, name: "radius-acct", aliases: []string{"radacct"}},
	{port: 2049, proto: ipvs.TCP, name: "nfs"},
	{port: 2049, proto: ipvs.UDP, name: "nfs"},
	{port: 3306, proto: ipvs.TCP, name: "mysql"},
	{port: 3389, proto: ipvs.TCP, name: "ms-wbt-server"},
	{port: 5060, proto: ipvs.TCP, name: "sip"},
	{port: 5060, proto: ipvs.UDP, name: "sip"},
	{port: 5061, proto: ipvs.TCP, name: "sip-tls"},
	{port: 5061, proto: ipvs.UDP, name: "sip-tls"},
	{port: 5353, proto: ipvs.UDP, name: "mdns"},
	{port: 5432, proto: ipvs.TCP, name: "postgresql", aliases: []string{"postgres"}},
	{port: 5672, proto: ipvs.TCP, name: "amqp"},
	{port: 5672, proto: ipvs.SCTP, name: "amqp"},
	{port: 6379, proto: ipvs.TCP, name: "redis"},
	{port: 8080, proto: ipvs.TCP, name: "http-alt", aliases: []string{"webcache"}},
	{port: 9418, proto: ipvs.TCP, name: "git"},
}

// portName is a port's service name for a protocol, or "" without one.
func portName(port uint16, proto ipvs.Protocol) string {
	for _, s := range services {
		if s.port == port && s.proto == proto {
			return s.name
		}
	}
	return ""
}

// portByName looks a service name or alias up for a protocol.
func portByName(name string, proto ipvs.Protocol) (uint16, bool) {
	for _, s := range services {
		if s.proto != proto {
			continue
		}
		if s.name == name {
			return s.port, true
		}
		for _, a := range s.aliases {
			if a == name {
				return s.port, true
			}
		}
	}
	return 0, false
}
