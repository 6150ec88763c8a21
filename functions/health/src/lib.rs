//! health function
