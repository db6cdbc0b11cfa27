// The conformance suite lands with issue 4 (packages/venue-paper is its first user).
export {};
