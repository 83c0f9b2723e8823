// Playback-speed change: ratios parsed from stretches, output lengths, and accuracy against the
// analytic signal (a sum of tones read at the new rate) with a stated signal-to-noise floor.
#include "core/speed_change.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

namespace earshot {
namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kRate = 16000.0;

// Tones up to 6 kHz, inside the filter's flat pass band, at sample position t.
double tones(double t_samples) {
    const double t = t_samples / kRate;
    return 0.3 * std::sin(2 * kPi * 220.0 * t) + 0.2 * std::sin(2 * kPi * 1375.0 * t + 0.5) +
           0.1 * std::sin(2 * kPi * 6000.0 * t + 1.0);
}

double tone_7500(double t_samples) { return 0.5 * std::sin(2 * kPi * 7500.0 * t_samples / kRate); }

// SNR in dB of `out` against `signal` read at m * in / out, away from the clip's ends.
template <typename Signal>
double snr_db(const std::vector<float>& out, SpeedRatio ratio, Signal signal_at) {
    double signal = 0.0, noise = 0.0;
    for (size_t m = 400; m + 400 < out.size(); ++m) {
        const double want = signal_at(double(m) * ratio.in / ratio.out);
        signal += want * want;
        noise += (out[m] - want) * (out[m] - want);
    }
    return 10.0 * std::log10(signal / noise);
}

TEST(SpeedChange, RatiosFromStretches) {
    Result<SpeedRatio> r = speed_ratio(1.02);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->out, 51);
    EXPECT_EQ(r->in, 50);
    r = speed_ratio(0.99);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->out, 99);
    EXPECT_EQ(r->in, 100);
    r = speed_ratio(1.0);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->out, 1);
    EXPECT_EQ(r->in, 1);
    EXPECT_TRUE(speed_ratio(double(1.01f)));  // a float's nearest double still parses
    EXPECT_FALSE(speed_ratio(1.2));
    EXPECT_FALSE(speed_ratio(0.5));
    EXPECT_FALSE(speed_ratio(1.0205));
    EXPECT_FALSE(speed_ratio(std::nan("")));
}

TEST(SpeedChange, LengthsAndAccuracy) {
    std::vector<float> in(32000);
    for (size_t i = 0; i < in.size(); ++i) in[i] = float(tones(double(i)));
    for (SpeedRatio ratio : {SpeedRatio{51, 50}, SpeedRatio{49, 50}, SpeedRatio{101, 100},
                             SpeedRatio{99, 100}, SpeedRatio{1, 1}}) {
        const std::vector<float> out = change_speed(in.data(), in.size(), ratio);
        EXPECT_EQ(out.size(), (in.size() * ratio.out + ratio.in - 1) / ratio.in);
        // 55-67 dB in float (scipy's resample_poly, the same filter in double: 56-67 dB)
        EXPECT_GT(snr_db(out, ratio, tones), 50.0) << ratio.out << "/" << ratio.in;
    }
    EXPECT_TRUE(change_speed(in.data(), 0, {51, 50}).empty());
    const std::vector<float> one = change_speed(in.data(), 1, {51, 50});
    EXPECT_EQ(one.size(), 2u);
}

// The top of the mel range (7.5 kHz for the shipped models) comes through, a little lower:
// -1.6 dB when stretching, -2.5 dB when shortening.
TEST(SpeedChange, TopOfTheMelRange) {
    std::vector<float> in(32000);
    for (size_t i = 0; i < in.size(); ++i) in[i] = float(tone_7500(double(i)));
    for (SpeedRatio ratio : {SpeedRatio{51, 50}, SpeedRatio{49, 50}}) {
        const std::vector<float> out = change_speed(in.data(), in.size(), ratio);
        double energy = 0.0;
        for (size_t m = 400; m + 400 < out.size(); ++m) energy += double(out[m]) * out[m];
        const double gain_db =
            10.0 * std::log10(energy / double(out.size() - 800) / (0.5 * 0.5 / 2.0));
        EXPECT_GT(gain_db, -3.0) << ratio.out << "/" << ratio.in;
        EXPECT_LT(gain_db, -1.0) << ratio.out << "/" << ratio.in;
    }
}

}  // namespace
}  // namespace earshot
