// A hash tree over the units a page fetches one by one from a lazy index (docs/SCALE.md, "A
// lazy million-song index, costed"): a `Range` request cannot be checked against a whole-file
// hash, and a table of one hash per unit would itself be too large to download first (26 M
// units at a million songs), so every unit is stored next to its inclusion proof, and the
// manifest carries only the tree's size and root.
//
// The tree is Certificate Transparency's Merkle Tree Hash (RFC 6962 section 2.1, RFC 9162
// section 2.1): leaf hash SHA-256(0x00 || unit), node SHA-256(0x01 || left || right), the left
// subtree of n leaves holding the largest power of two below n; an empty tree's root is
// SHA-256(""). Inclusion proofs are RFC 9162's audit paths, bottom up, at most ceil(log2 n)
// hashes; verification is its section 2.1.3.2. Written by hand: no Debian library provides it for
// both native code and WASM, and it is a few dozen lines over core/sha256.h.
//
// Writing: leaf i is merkle_leaf_hash(unit i); proof(i) is stored next to unit i.
//   auto tree = MerkleTree::build(leaf_hashes);
//   std::vector<MerkleDigest> path = tree.proof(i);
// Reading, in the page, before using unit i's bytes:
//   bool ok = merkle_verify(merkle_leaf_hash(bytes, size), i, tree_size, path.data(),
//                           path.size(), root);
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace earshot {

using MerkleDigest = std::array<uint8_t, 32>;

// SHA-256(0x00 || data[0..size)): the hash of one unit as a leaf.
MerkleDigest merkle_leaf_hash(const uint8_t* data, size_t size);
// SHA-256(0x01 || left || right).
MerkleDigest merkle_node_hash(const MerkleDigest& left, const MerkleDigest& right);

class MerkleTree {
public:
    // Every level of the tree over `leaf_hashes`, kept for proofs: about twice the leaves'
    // bytes (64 bytes a unit).
    static MerkleTree build(std::vector<MerkleDigest> leaf_hashes);

    size_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }
    MerkleDigest root() const;
    // The audit path of leaf `index` (< size()), bottom up; empty for a one-leaf tree.
    std::vector<MerkleDigest> proof(size_t index) const;

private:
    // levels_[0]: the leaves; levels_[k + 1][j] = node(levels_[k][2j], levels_[k][2j + 1]), or
    // levels_[k][2j] itself when it has no right sibling (which gives RFC 6962's shape).
    std::vector<std::vector<MerkleDigest>> levels_;
};

// The number of hashes in the audit path of leaf `index` of a tree of `tree_size` leaves (what
// MerkleTree::proof returns); 0 when index >= tree_size.
size_t merkle_proof_length(uint64_t index, uint64_t tree_size);

// Whether `path` (path_size hashes, bottom up) proves that the leaf with hash `leaf_hash` is
// leaf `index` of a tree of `tree_size` leaves whose root is `root`. False for an index
// outside the tree, a path of the wrong length and any changed byte.
bool merkle_verify(const MerkleDigest& leaf_hash, uint64_t index, uint64_t tree_size,
                   const MerkleDigest* path, size_t path_size, const MerkleDigest& root);

}  // namespace earshot
