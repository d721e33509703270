// Package examples shows, and tests, how existing apps move to wxhub: an unmodified WeChat
// SDK whose HTTP client is pointed at wxhub's gateway. It is a module of its own so that the
// SDKs it uses never become dependencies of wxhub itself.
package examples
