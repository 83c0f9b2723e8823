#include "core/merkle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/sha256.h"

namespace earshot {
namespace {

// The eight leaves of Certificate Transparency's test vectors, whose tree roots are published
// (certificate-transparency's merkle tree tests; the same values follow from RFC 6962's recursive
// definition).
const std::vector<std::vector<uint8_t>> kCtLeaves = {
    {},
    {0x00},
    {0x10},
    {0x20, 0x21},
    {0x30, 0x31},
    {0x40, 0x41, 0x42, 0x43},
    {0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57},
    {0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d, 0x6e,
     0x6f},
};
const char* const kCtRoots[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

std::string hex(const MerkleDigest& d) { return to_hex(d.data(), d.size()); }

std::vector<MerkleDigest> leaf_hashes(size_t n) {
    std::vector<MerkleDigest> out;
    for (size_t i = 0; i < n; ++i) {
        const std::string unit = "unit " + std::to_string(i);
        out.push_back(merkle_leaf_hash(reinterpret_cast<const uint8_t*>(unit.data()), unit.size()));
    }
    return out;
}

// RFC 6962's recursive definition, as written there: the reference for the level-by-level build.
MerkleDigest reference_root(const MerkleDigest* leaves, size_t n) {
    if (n == 1) return leaves[0];
    size_t k = 1;
    while (2 * k < n) k *= 2;
    return merkle_node_hash(reference_root(leaves, k), reference_root(leaves + k, n - k));
}

TEST(Merkle, CertificateTransparencyRoots) {
    EXPECT_EQ(hex(MerkleTree::build({}).root()),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");  // SHA-256("")
    std::vector<MerkleDigest> leaves;
    for (size_t n = 1; n <= kCtLeaves.size(); ++n) {
        leaves.push_back(merkle_leaf_hash(kCtLeaves[n - 1].data(), kCtLeaves[n - 1].size()));
        const MerkleTree tree = MerkleTree::build(leaves);
        EXPECT_EQ(tree.size(), n);
        EXPECT_EQ(hex(tree.root()), kCtRoots[n - 1]) << n << " leaves";
    }
}

TEST(Merkle, EveryProofOfEverySizeVerifies) {
    for (size_t n = 1; n <= 70; ++n) {
        const std::vector<MerkleDigest> leaves = leaf_hashes(n);
        const MerkleTree tree = MerkleTree::build(leaves);
        ASSERT_EQ(tree.root(), reference_root(leaves.data(), n)) << n;
        size_t depth = 0;
        while ((size_t(1) << depth) < n) ++depth;
        for (size_t i = 0; i < n; ++i) {
            const std::vector<MerkleDigest> path = tree.proof(i);
            EXPECT_LE(path.size(), depth);
            EXPECT_EQ(path.size(), merkle_proof_length(i, n));
            EXPECT_TRUE(merkle_verify(leaves[i], i, n, path.data(), path.size(), tree.root()))
                << "leaf " << i << " of " << n;
        }
        EXPECT_TRUE(tree.proof(n).empty());
        EXPECT_EQ(merkle_proof_length(n, n), 0u);
    }
}

TEST(Merkle, RejectsWhatWasNotProved) {
    const size_t n = 13;
    const std::vector<MerkleDigest> leaves = leaf_hashes(n);
    const MerkleTree tree = MerkleTree::build(leaves);
    const MerkleDigest root = tree.root();
    for (size_t i = 0; i < n; ++i) {
        std::vector<MerkleDigest> path = tree.proof(i);
        ASSERT_FALSE(path.empty());
        // Another unit's bytes, another position, another tree size, a wrong root.
        EXPECT_FALSE(merkle_verify(leaves[(i + 1) % n], i, n, path.data(), path.size(), root));
        EXPECT_FALSE(merkle_verify(leaves[i], (i + 1) % n, n, path.data(), path.size(), root));
        EXPECT_FALSE(merkle_verify(leaves[i], i, n + 5, path.data(), path.size(), root));
        EXPECT_FALSE(merkle_verify(leaves[i], i, i, path.data(), path.size(), root));
        MerkleDigest other_root = root;
        other_root[31] ^= 1;
        EXPECT_FALSE(merkle_verify(leaves[i], i, n, path.data(), path.size(), other_root));
        // A changed bit anywhere in the path, a path cut short or grown.
        for (size_t k = 0; k < path.size(); ++k) {
            std::vector<MerkleDigest> bad = path;
            bad[k][k % 32] ^= 0x80;
            EXPECT_FALSE(merkle_verify(leaves[i], i, n, bad.data(), bad.size(), root));
        }
        EXPECT_FALSE(merkle_verify(leaves[i], i, n, path.data(), path.size() - 1, root));
        path.push_back(root);
        EXPECT_FALSE(merkle_verify(leaves[i], i, n, path.data(), path.size(), root));
    }
    // A unit read as an inner node's pair, or a node presented as a leaf, hashes differently
    // (the 0x00 / 0x01 prefixes): the root of a two-leaf tree is not a leaf of a one-leaf tree.
    const MerkleDigest pair = merkle_node_hash(leaves[0], leaves[1]);
    uint8_t joined[64];
    std::copy(leaves[0].begin(), leaves[0].end(), joined);
    std::copy(leaves[1].begin(), leaves[1].end(), joined + 32);
    EXPECT_NE(merkle_leaf_hash(joined, sizeof joined), pair);
}

}  // namespace
}  // namespace earshot
