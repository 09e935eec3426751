//! An `impl` block read as far as `#[routes]` needs it: its header, and of each method its
//! attributes and signature. Method bodies stay tokens, passed through untouched (as
//! tracing-attributes' `MaybeItemFn` does), so a mistake inside a handler is reported by rustc
//! alone, once, and never stops this macro.

use proc_macro2::TokenStream;

pub(crate) use crate::item_fn::FnItem;
use quote::{ToTokens, TokenStreamExt};
use syn::parse::{Parse, ParseStream};

/// An `impl` block with opaque method bodies.
pub(crate) struct ImplBlock {
    pub(crate) attrs: Vec<syn::Attribute>,
    pub(crate) unsafety: Option<syn::Token![unsafe]>,
    pub(crate) impl_token: syn::Token![impl],
    pub(crate) generics: syn::Generics,
    /// `Trait for` when the block implements a trait (`#[routes]` refuses it).
    pub(crate) trait_: Option<(syn::Path, syn::Token![for])>,
    pub(crate) self_ty: syn::Type,
    pub(crate) brace: syn::token::Brace,
    pub(crate) inner_attrs: Vec<syn::Attribute>,
    pub(crate) items: Vec<ImplItem>,
}

/// An item of the block.
pub(crate) enum ImplItem {
    /// A method: read up to its body.
    Fn(Box<FnItem>),
    /// Anything else (a const, a type, a macro call): passed through.
    Other(Box<syn::ImplItem>),
}

impl Parse for ImplBlock {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(syn::Attribute::parse_outer)?;
        let unsafety = input.parse()?;
        let impl_token = input.parse()?;
        let mut generics: syn::Generics = input.parse()?;
        let first: syn::Type = input.parse()?;
        let (trait_, self_ty) = if input.peek(syn::Token![for]) {
            let for_token = input.parse()?;
            let syn::Type::Path(trait_path) = first else {
                return Err(syn::Error::new_spanned(first, "expected a trait"));
            };
            (Some((trait_path.path, for_token)), input.parse()?)
        } else {
            (None, first)
        };
        generics.where_clause = input.parse()?;
        let content;
        let brace = syn::braced!(content in input);
        let inner_attrs = content.call(syn::Attribute::parse_inner)?;
        let mut items = Vec::new();
        while !content.is_empty() {
            items.push(content.parse()?);
        }
        Ok(ImplBlock {
            attrs,
            unsafety,
            impl_token,
            generics,
            trait_,
            self_ty,
            brace,
            inner_attrs,
            items,
        })
    }
}

impl Parse for ImplItem {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        // A method is whatever reads as attributes, a visibility and a signature followed by
        // a braced body; the body is not looked into.
        let fork = input.fork();
        let method = fork.parse::<FnItem>();
        match method {
            Ok(method) => {
                syn::parse::discouraged::Speculative::advance_to(input, &fork);
                Ok(ImplItem::Fn(Box::new(method)))
            }
            Err(_) => input.parse().map(|item| ImplItem::Other(Box::new(item))),
        }
    }
}

impl ToTokens for ImplBlock {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        tokens.append_all(&self.attrs);
        self.unsafety.to_tokens(tokens);
        self.impl_token.to_tokens(tokens);
        self.generics.to_tokens(tokens);
        if let Some((path, for_token)) = &self.trait_ {
            path.to_tokens(tokens);
            for_token.to_tokens(tokens);
        }
        self.self_ty.to_tokens(tokens);
        self.generics.where_clause.to_tokens(tokens);
        self.brace.surround(tokens, |tokens| {
            tokens.append_all(&self.inner_attrs);
            for item in &self.items {
                match item {
                    ImplItem::Fn(method) => method.to_tokens(tokens),
                    ImplItem::Other(other) => other.to_tokens(tokens),
                }
            }
        });
    }
}
