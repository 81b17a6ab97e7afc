package keys

import (
	"testing"

	"github.com/countersign/countersign/internal/auth"
	"github.com/countersign/countersign/internal/errs"
)

// TestDelegationRule is the table of the one rule every key and wallet path uses.
func TestDelegationRule(t *testing.T) {
	staff := auth.Principal{OrgID: "or-1", UserID: "us-staff", UserKind: "CustomerEmployee"}
	sa := auth.Principal{OrgID: "or-1", UserID: "us-sa", IsServiceAccount: true}
	alice := auth.Principal{OrgID: "or-1", UserID: "us-alice", UserKind: "EndUser"}
	bob := auth.Principal{OrgID: "or-1", UserID: "us-bob", UserKind: "EndUser"}
	outsider := auth.Principal{OrgID: "or-2", UserID: "us-x", IsServiceAccount: true}
	orgKey := Key{ID: "key-1", OrgID: "or-1"}
	aliceKey := Key{ID: "key-2", OrgID: "or-1", DelegatedTo: "us-alice"}
	for _, tc := range []struct {
		name    string
		p       auth.Principal
		k       Key
		visible bool
		write   errs.Kind // Internal (the zero value) = allowed
	}{
		{"staff/org key", staff, orgKey, true, errs.Internal},
		{"service account/org key", sa, orgKey, true, errs.Internal},
		{"staff/delegated key", staff, aliceKey, true, errs.PermissionDenied},
		{"service account/delegated key", sa, aliceKey, true, errs.PermissionDenied},
		{"end user/own key", alice, aliceKey, true, errs.Internal},
		{"end user/another's key", bob, aliceKey, false, errs.NotFound},
		{"end user/org key", alice, orgKey, false, errs.NotFound},
		{"other org/org key", outsider, orgKey, false, errs.NotFound},
		{"other org/delegated key", outsider, aliceKey, false, errs.NotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Visible(tc.p, tc.k); got != tc.visible {
				t.Errorf("Visible = %v, want %v", got, tc.visible)
			}
			err := CheckWrite(tc.p, tc.k)
			switch {
			case tc.write == errs.Internal && err != nil:
				t.Errorf("CheckWrite = %v, want allowed", err)
			case tc.write != errs.Internal && !errs.Is(err, tc.write):
				t.Errorf("CheckWrite = %v, want %s", err, tc.write)
			}
		})
	}
	if p := ListFilter(alice, Page{Limit: 5}); p.DelegatedTo != "us-alice" || p.Limit != 5 {
		t.Errorf("end-user list filter %+v", p)
	}
	if p := ListFilter(sa, Page{}); p.DelegatedTo != "" {
		t.Errorf("service-account list filter %+v", p)
	}
}
