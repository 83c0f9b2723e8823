#include "core/merkle.h"

#include "core/sha256.h"

namespace earshot {

MerkleDigest merkle_leaf_hash(const uint8_t* data, size_t size) {
    const uint8_t prefix = 0x00;
    Sha256 h;
    h.update(&prefix, 1);
    h.update(data, size);
    return h.finish();
}

MerkleDigest merkle_node_hash(const MerkleDigest& left, const MerkleDigest& right) {
    const uint8_t prefix = 0x01;
    Sha256 h;
    h.update(&prefix, 1);
    h.update(left.data(), left.size());
    h.update(right.data(), right.size());
    return h.finish();
}

MerkleTree MerkleTree::build(std::vector<MerkleDigest> leaf_hashes) {
    MerkleTree tree;
    if (leaf_hashes.empty()) return tree;
    tree.levels_.push_back(std::move(leaf_hashes));
    while (tree.levels_.back().size() > 1) {
        const std::vector<MerkleDigest>& below = tree.levels_.back();
        std::vector<MerkleDigest> level((below.size() + 1) / 2);
        for (size_t j = 0; j < level.size(); ++j)
            level[j] = 2 * j + 1 < below.size() ? merkle_node_hash(below[2 * j], below[2 * j + 1])
                                                : below[2 * j];
        tree.levels_.push_back(std::move(level));
    }
    return tree;
}

MerkleDigest MerkleTree::root() const {
    if (levels_.empty()) return sha256(nullptr, 0);
    return levels_.back()[0];
}

std::vector<MerkleDigest> MerkleTree::proof(size_t index) const {
    std::vector<MerkleDigest> path;
    if (index >= size()) return path;
    for (size_t k = 0; k + 1 < levels_.size(); ++k, index /= 2) {
        const size_t sibling = index ^ 1;
        if (sibling < levels_[k].size()) path.push_back(levels_[k][sibling]);
        // else: the last node of an odd level moves up unchanged, and nothing is proved here
    }
    return path;
}

size_t merkle_proof_length(uint64_t index, uint64_t tree_size) {
    size_t n = 0;
    if (index >= tree_size) return n;
    for (uint64_t size = tree_size; size > 1; size = (size + 1) / 2, index /= 2)
        if ((index ^ 1) < size) ++n;
    return n;
}

bool merkle_verify(const MerkleDigest& leaf_hash, uint64_t index, uint64_t tree_size,
                   const MerkleDigest* path, size_t path_size, const MerkleDigest& root) {
    // RFC 9162 section 2.1.3.2, step by step.
    if (index >= tree_size) return false;
    uint64_t fn = index, sn = tree_size - 1;
    MerkleDigest r = leaf_hash;
    for (size_t i = 0; i < path_size; ++i) {
        if (sn == 0) return false;  // a longer path than the tree has levels
        if ((fn & 1) || fn == sn) {
            r = merkle_node_hash(path[i], r);
            if (!(fn & 1)) {
                while (!(fn & 1) && fn != 0) {
                    fn >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = merkle_node_hash(r, path[i]);
        }
        fn >>= 1;
        sn >>= 1;
    }
    return sn == 0 && r == root;
}

}  // namespace earshot
