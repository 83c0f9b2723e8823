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

TEST(JsonRead, ReadsUnsigned64InRange) {
    const nlohmann::json obj = {
        {"n", 4000000000ull}, {"neg", -1}, {"signed", int64_t(7)}, {"f", 2.0}, {"max", UINT64_MAX}};
    uint64_t v = 42;
    ASSERT_TRUE(json_read_uint64(obj, "n", UINT32_MAX, "obj", &v));  // beyond int's range
    EXPECT_EQ(v, 4000000000ull);
    ASSERT_TRUE(json_read_uint64(obj, "signed", 10, "obj", &v));
    EXPECT_EQ(v, 7u);
    ASSERT_TRUE(json_read_uint64(obj, "max", UINT64_MAX, "obj", &v));
    EXPECT_EQ(v, UINT64_MAX);
    v = 42;
    Status st = json_read_uint64(obj, "neg", 10, "obj", &v);
    EXPECT_NE(st.message().find("'neg' = -1 is out of range [0, 10]"), std::string::npos)
        << st.message();
    st = json_read_uint64(obj, "n", 100, "obj", &v);
    EXPECT_NE(st.message().find("out of range [0, 100]"), std::string::npos) << st.message();
    st = json_read_uint64(obj, "f", 10, "obj", &v);
    EXPECT_NE(st.message().find("'f' must be an integer, got 2.0"), std::string::npos)
        << st.message();
    st = json_read_uint64(obj, "missing", 10, "obj", &v);
    EXPECT_NE(st.message().find("obj lacks 'missing'"), std::string::npos) << st.message();
    EXPECT_EQ(v, 42u);  // untouched on error
}

TEST(JsonRead, ReadsDoublesStringsObjectsAndArrays) {
    const nlohmann::json obj = {
        {"d", 0.1}, {"i", 3}, {"s", "text"}, {"o", {{"k", 1}}}, {"a", {1, 2}}};
    double d = 0.0;
    ASSERT_TRUE(json_read_double(obj, "d", "obj", &d));
    EXPECT_EQ(d, 0.1);  // full double precision
    ASSERT_TRUE(json_read_double(obj, "i", "obj", &d));
    EXPECT_EQ(d, 3.0);
    EXPECT_FALSE(json_read_double(obj, "s", "obj", &d));
    std::string s;
    ASSERT_TRUE(json_read_string(obj, "s", "obj", &s));
    EXPECT_EQ(s, "text");
    Status st = json_read_string(obj, "i", "obj", &s);
    EXPECT_NE(st.message().find("'i' must be a string, got 3"), std::string::npos) << st.message();
    const nlohmann::json* member = nullptr;
    ASSERT_TRUE(json_read_object(obj, "o", "obj", &member));
    EXPECT_EQ(member, &obj["o"]);
    ASSERT_TRUE(json_read_array(obj, "a", "obj", &member));
    EXPECT_EQ(member->size(), 2u);
    st = json_read_object(obj, "a", "obj", &member);
    EXPECT_NE(st.message().find("'a' must be an object"), std::string::npos) << st.message();
    st = json_read_array(obj, "o", "obj", &member);
    EXPECT_NE(st.message().find("'o' must be an array"), std::string::npos) << st.message();
    EXPECT_FALSE(json_read_array(obj, "missing", "obj", &member));
}

TEST(JsonRead, OptionalFieldsMayBeMissingButNotWrong) {
    const nlohmann::json obj = {{"s", "x"}, {"d", 1.5}};
    std::string s = "default";
    double d = -1.0;
    ASSERT_TRUE(json_read_optional_string(obj, "missing", "obj", &s));
    ASSERT_TRUE(json_read_optional_double(obj, "missing", "obj", &d));
    EXPECT_EQ(s, "default");
    EXPECT_EQ(d, -1.0);
    ASSERT_TRUE(json_read_optional_string(obj, "s", "obj", &s));
    ASSERT_TRUE(json_read_optional_double(obj, "d", "obj", &d));
    EXPECT_EQ(s, "x");
    EXPECT_EQ(d, 1.5);
    EXPECT_FALSE(json_read_optional_string(obj, "d", "obj", &s));
    EXPECT_FALSE(json_read_optional_double(obj, "s", "obj", &d));
    // Not an object: nothing to find, so the optional reads keep their defaults.
    EXPECT_TRUE(json_read_optional_string(nlohmann::json::array(), "s", "obj", &s));
}

}  // namespace
}  // namespace earshot
