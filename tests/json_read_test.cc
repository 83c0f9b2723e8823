#include "core/json_read.h"

#include <gtest/gtest.h>

namespace earshot {
namespace {

TEST(JsonRead, ReadsIntegersInRange) {
    const nlohmann::json obj = {{"a", 7}, {"b", -3}};
    int v = 0;
    ASSERT_TRUE(json_read_int(obj, "a", 0, 10, "obj", &v));
    EXPECT_EQ(v, 7);
    ASSERT_TRUE(json_read_int(obj, "b", -3, 3, "obj", &v));
    EXPECT_EQ(v, -3);
}

TEST(JsonRead, RejectsMissingWrongTypeAndOutOfRange) {
    const nlohmann::json obj = {{"f", 1.5}, {"s", "7"}, {"big", 11}, {"huge", UINT64_MAX}};
    int v = 42;
    Status st = json_read_int(obj, "missing", 0, 10, "obj", &v);
    EXPECT_NE(st.message().find("obj lacks 'missing'"), std::string::npos) << st.message();
    st = json_read_int(obj, "f", 0, 10, "obj", &v);
    EXPECT_NE(st.message().find("'f' must be an integer, got 1.5"), std::string::npos)
        << st.message();
    EXPECT_FALSE(json_read_int(obj, "s", 0, 10, "obj", &v));
    st = json_read_int(obj, "big", 0, 10, "obj", &v);
    EXPECT_NE(st.message().find("'big' = 11 is out of range [0, 10]"), std::string::npos)
        << st.message();
    // An unsigned value above INT64_MAX must not wrap around into the range.
    st = json_read_int(obj, "huge", -10, 10, "obj", &v);
    EXPECT_NE(st.message().find("out of range"), std::string::npos) << st.message();
    EXPECT_EQ(v, 42);  // untouched on error
}

TEST(JsonRead, ReadsNumbersAsFloat) {
    const nlohmann::json obj = {{"i", 3}, {"d", 0.25}, {"s", "x"}};
    float v = 0.0f;
    ASSERT_TRUE(json_read_float(obj, "i", "obj", &v));
    EXPECT_EQ(v, 3.0f);
    ASSERT_TRUE(json_read_float(obj, "d", "obj", &v));
    EXPECT_EQ(v, 0.25f);
    const Status st = json_read_float(obj, "s", "obj", &v);
    EXPECT_NE(st.message().find("'s' must be a number"), std::string::npos) << st.message();
}

}  // namespace
}  // namespace earshot
