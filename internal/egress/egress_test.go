package egress

import (
	"net/netip"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		allow []string
		host  string
		addr  string
		ok    bool
	}{
		// Open default: all but link-local, metadata and non-unicast.
		{nil, "", "8.8.8.8", true},
		{nil, "", "10.1.2.3", true},
		{nil, "", "127.0.0.1", true},
		{nil, "", "169.254.169.254", false},
		{nil, "", "169.254.1.1", false},
		{nil, "", "fe80::1", false},
		{nil, "", "fd00:ec2::254", false},
		{nil, "", "100.100.100.200", false},
		{nil, "", "::ffff:169.254.169.254", false},
		{nil, "", "0.0.0.0", false},
		{nil, "", "224.0.0.1", false},
		// Allowlist.
		{[]string{"10.0.0.0/8"}, "", "10.1.2.3", true},
		{[]string{"10.0.0.0/8"}, "", "11.1.2.3", false},
		{[]string{"10.0.0.0/8"}, "", "127.0.0.1", false},
		{[]string{"0.0.0.0/0"}, "", "127.0.0.1", false},
		{[]string{"0.0.0.0/0"}, "", "169.254.169.254", false},
		{[]string{"127.0.0.1"}, "", "127.0.0.1", true},
		{[]string{"127.0.0.1"}, "", "127.0.0.2", false},
		{[]string{"169.254.169.254"}, "", "169.254.169.254", true},
		{[]string{"hooks.example.com"}, "hooks.example.com", "203.0.113.7", true},
		{[]string{"hooks.example.com"}, "HOOKS.example.com.", "203.0.113.7", true},
		{[]string{"hooks.example.com"}, "other.example.com", "203.0.113.7", false},
		{[]string{"hooks.example.com"}, "", "203.0.113.7", false},
		{[]string{"hooks.example.com"}, "hooks.example.com", "169.254.169.254", false},
		{[]string{"hooks.example.com"}, "hooks.example.com", "127.0.0.1", false},
		{[]string{"*.example.com"}, "a.b.example.com", "203.0.113.7", true},
		{[]string{"*.example.com"}, "example.com", "203.0.113.7", false},
	}
	for _, tt := range tests {
		p, err := Parse(tt.allow)
		if err != nil {
			t.Fatal(err)
		}
		err = p.Check(tt.host, netip.MustParseAddr(tt.addr))
		if (err == nil) != tt.ok {
			t.Errorf("allow %v: Check(%q, %s) = %v, want allowed %v", tt.allow, tt.host, tt.addr, err, tt.ok)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for _, e := range []string{"10.0.0.0/33", "http://x", "a b", "user@host", "*."} {
		if _, err := Parse([]string{e}); err == nil {
			t.Errorf("Parse(%q) accepted it", e)
		}
	}
}
