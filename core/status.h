// Errors are values at the core boundary: no exception leaves core/ (none may cross into
// WASM or JS). Messages say what was wrong and, where possible, what to do.
#pragma once

#include <optional>
#include <string>
#include <utility>

namespace earshot {

class Status {
public:
    Status() = default;  // ok
    static Status ok() { return Status(); }
    static Status error(std::string message) { return Status(std::move(message)); }

    bool is_ok() const { return !message_.has_value(); }
    explicit operator bool() const { return is_ok(); }
    const std::string& message() const {
        static const std::string kOk = "ok";
        return message_ ? *message_ : kOk;
    }

private:
    explicit Status(std::string message) : message_(std::move(message)) {}
    std::optional<std::string> message_;
};

// expected-style result: either a value or an error Status.
template <typename T>
class Result {
public:
    Result(T value) : value_(std::move(value)) {}                  // NOLINT: implicit by design
    Result(Status status) : status_(std::move(status)) {}         // NOLINT: must be an error
    bool is_ok() const { return value_.has_value(); }
    explicit operator bool() const { return is_ok(); }
    const Status& status() const { return status_; }
    const std::string& message() const { return status_.message(); }
    T& value() { return *value_; }
    const T& value() const { return *value_; }
    T* operator->() { return &*value_; }
    const T* operator->() const { return &*value_; }
    T& operator*() { return *value_; }

private:
    std::optional<T> value_;
    Status status_;
};

}  // namespace earshot
