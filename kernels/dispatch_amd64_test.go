//go:build amd64 && !purego

package kernels

import (
	"os"
	"slices"
	"testing"
)

// On amd64 the tiers are generic < avx2 < avx-vnni < avx512-vnni, each listed
// where the CPU has its features, and the best one is chosen by default.
func TestTiersAMD64(t *testing.T) {
	want := []Tier{TierGeneric}
	for _, c := range []struct {
		has  bool
		tier Tier
	}{{hasAVX2, TierAVX2}, {hasAVXVNNI, TierAVXVNNI}, {hasAVX512, TierAVX512}} {
		if c.has {
			want = append(want, c.tier)
		}
	}
	if got := Tiers(); !slices.Equal(got, want) {
		t.Fatalf("Tiers() = %v, want %v", got, want)
	}
	if os.Getenv("CAFEQ_KERNELS") == "" && CurrentTier() != want[len(want)-1] {
		t.Fatalf("default tier %v, want %v", CurrentTier(), want[len(want)-1])
	}
	names := []string{"generic", "avx2", "avx-vnni", "avx512-vnni"}
	for i, tier := range []Tier{TierGeneric, TierAVX2, TierAVXVNNI, TierAVX512} {
		if tier.String() != names[i] {
			t.Fatalf("tier %d is named %q, want %q (CAFEQ_KERNELS)", tier, tier, names[i])
		}
	}
}
