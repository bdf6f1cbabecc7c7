//! canal-client: the library downstream consumers use to read row changes from a canal-server.
#![deny(missing_docs)]
