// Writes the seed corpora of the fuzz targets: the fixture model, quantizer, shards and manifest
// (real formats, written by the real writers, see fuzz_fixtures.h) and recognizer inputs made
// from a real audio file. Usage: earshot_fuzz_seeds AUDIO.wav OUT_DIR (writes OUT_DIR/<target>/).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "core/native/audio.h"
#include "tests/fuzz/index_fuzz_util.h"

namespace {

void write(const std::filesystem::path& path, const std::vector<uint8_t>& bytes) {
    std::filesystem::create_directories(path.parent_path());
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), std::streamsize(bytes.size()));
}

std::vector<uint8_t> recognizer_input(uint8_t flags, uint8_t repeats, uint16_t block,
                                      const std::vector<uint8_t>& samples) {
    std::vector<uint8_t> out = {flags, repeats, uint8_t(block & 255), uint8_t(block >> 8)};
    out.insert(out.end(), samples.begin(), samples.end());
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    using namespace earshot;
    if (argc != 3) {
        std::fprintf(stderr, "usage: %s AUDIO OUT_DIR\n", argv[0]);
        return 2;
    }
    const std::filesystem::path out(argv[2]);
    const fuzz::IndexFixture& fixture = fuzz::index_fixture();
    write(out / "model" / "fixture.emod", fuzz::model_spec().build());
    write(out / "quantizer" / "quantizer.eq", fixture.file("quantizer.eq"));
    write(out / "quantizer" / "quantizer-rotated.eq",
          fuzz::build_index(fixture.model->info(), 2).files.at("quantizer.eq"));
    for (const auto& [name, bytes] : fixture.files.files) {
        if (name.rfind("shard-", 0) == 0) write(out / "shard" / name, bytes);
    }
    write(out / "manifest" / "manifest.json", fixture.file("manifest.json"));
    write(out / "manifest" / "manifest-v2.json", fixture.v2.files.at("manifest.json"));
    write(out / "directory" / "directory.ed", fixture.v2.files.at("directory.ed"));
    write(out / "lazy" / "directory-pages.edh", fixture.lazy.files.at("directory-pages.edh"));

    auto audio = load_audio(argv[1], 16000);
    if (!audio) {
        std::fprintf(stderr, "%s\n", audio.message().c_str());
        return 1;
    }
    std::vector<uint8_t> i16, f32_odd;
    for (float v : audio->samples) {
        const int16_t s = int16_t(std::lround(std::max(-1.0f, std::min(1.0f, v)) * 32767.0f));
        i16.push_back(uint8_t(s & 255));
        i16.push_back(uint8_t(uint16_t(s) >> 8));
    }
    // f32 with the values a broken source produces: NaN, infinities, huge, denormal.
    const float odd[] = {std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::infinity(),
                         -std::numeric_limits<float>::infinity(), 1e30f, -1e30f, 1e-40f};
    for (size_t i = 0; i < audio->samples.size(); ++i) {
        const float v = i % 500 < 6 ? odd[i % 500] : audio->samples[i];
        const auto* b = reinterpret_cast<const uint8_t*>(&v);
        f32_odd.insert(f32_odd.end(), b, b + 4);
    }
    const std::vector<uint8_t> levels = {255, 255, 250, 240, 200, 120, 60, 0, 0, 255, 255, 230};
    write(out / "recognizer" / "live-i16-blocks", recognizer_input(0x07, 8, 128, i16));
    write(out / "recognizer" / "clip-i16-one-block", recognizer_input(0x04, 4, 0, i16));
    write(out / "recognizer" / "live-f32-odd-values", recognizer_input(0x03, 4, 300, f32_odd));
    write(out / "recognizer" / "live-levels-reset", recognizer_input(0x1f, 16, 1, levels));
    return 0;
}
