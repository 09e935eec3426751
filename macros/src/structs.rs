//! Parses `#[backend_plugin(...)]` and `#[service(...)]`: `name = value` arguments and a struct
//! whose `#[inject]` fields are dependencies, into a model that keeps the user's tokens.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;

/// One argument of the attribute: `name = "text"`, `name = SomeType`, or a bare `name`.
pub(crate) struct Arg {
    pub(crate) name: syn::Ident,
    pub(crate) value: Value,
}

pub(crate) enum Value {
    Str(syn::LitStr),
    Type(Box<syn::Type>),
    Flag,
}

impl Value {
    /// The string literal, if the value is one.
    pub(crate) fn str(&self) -> Option<&syn::LitStr> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

impl quote::ToTokens for Value {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        match self {
            Value::Str(s) => s.to_tokens(tokens),
            Value::Type(t) => t.to_tokens(tokens),
            Value::Flag => {}
        }
    }
}

impl syn::parse::Parse for Arg {
    fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
        let name: syn::Ident = input.parse()?;
        if !input.peek(syn::Token![=]) {
            return Ok(Arg {
                name,
                value: Value::Flag,
            });
        }
        input.parse::<syn::Token![=]>()?;
        let value = if input.peek(syn::LitStr) {
            Value::Str(input.parse()?)
        } else {
            Value::Type(Box::new(input.parse()?))
        };
        Ok(Arg { name, value })
    }
}

/// Checks `args` against the names a macro takes: each unknown name is an error that lists
/// `usage` (and the nearest known name), each name given twice is an error. Whether an unknown
/// name was found, so that "missing argument" errors are not piled on top.
pub(crate) fn check_names(
    args: &[Arg],
    known: &[&str],
    macro_name: &str,
    usage: &str,
    errors: &mut crate::common::Errors,
) -> bool {
    let mut seen: Vec<String> = Vec::new();
    let mut unknown = false;
    for arg in args {
        let name = arg.name.to_string();
        if !known.contains(&name.as_str()) {
            unknown = true;
            let hint = match crate::common::closest(&name, known) {
                Some(c) => format!("; did you mean `{c}`?"),
                None => String::new(),
            };
            errors.at(
                &arg.name,
                format!("unknown argument `{name}` of #[{macro_name}]: {usage}{hint}"),
            );
        } else if seen.contains(&name) {
            errors.at(&arg.name, format!("`{name}` is given twice"));
        }
        seen.push(name);
    }
    unknown
}

/// The string value of argument `name`, or an error saying it takes one.
pub(crate) fn string_arg<'a>(
    args: &'a [Arg],
    name: &str,
    errors: &mut crate::common::Errors,
) -> Option<&'a syn::LitStr> {
    let arg = args.iter().find(|a| a.name == name)?;
    match &arg.value {
        Value::Str(s) => Some(s),
        _ => {
            errors.at(
                &arg.name,
                format!("`{name}` takes a string: `{name} = \"...\"`"),
            );
            None
        }
    }
}

pub(crate) struct Field {
    pub(crate) ident: syn::Ident,
    pub(crate) ty: syn::Type,
    pub(crate) inject: bool,
    /// Other attributes on `#[inject]` (`#[inject(x)]`): none are accepted.
    pub(crate) inject_args: Option<syn::Attribute>,
}

pub(crate) enum Shape {
    Named(Vec<Field>),
    Unit,
    /// Not a struct with named fields; the span points at what is wrong.
    Unsupported(Span, String),
}

pub(crate) struct Model {
    pub(crate) args: Vec<Arg>,
    pub(crate) attr_span: Span,
    /// The struct as written, `#[inject]` attributes removed.
    pub(crate) item: syn::ItemStruct,
    pub(crate) shape: Shape,
    /// Errors found while parsing (a misspelled `#[inject]`), reported with the rest.
    pub(crate) errors: Vec<syn::Error>,
}

/// `macro_name` (`backend_plugin`) and `example` (`id = "my-plugin"`) word the errors.
pub(crate) fn parse(
    attr: TokenStream,
    item: TokenStream,
    macro_name: &str,
    example: &str,
) -> syn::Result<Model> {
    let kind = match macro_name {
        "backend_module" => "MyModule",
        "service" => "MyService",
        _ => "MyPlugin",
    };
    let attr_span = if attr.is_empty() {
        Span::call_site()
    } else {
        attr.span()
    };
    let parser = syn::punctuated::Punctuated::<Arg, syn::Token![,]>::parse_terminated;
    let args: Vec<Arg> = parser
        .parse2(attr)
        .map_err(|e| syn::Error::new(e.span(), format!("expected `{example}`")))?
        .into_iter()
        .collect();

    let item: syn::Item = syn::parse2(item)?;
    let mut item = match item {
        syn::Item::Struct(item) => item,
        syn::Item::Enum(e) => {
            return Err(syn::Error::new_spanned(
                e.enum_token,
                format!(
                    "#[{macro_name}] goes on a struct with named fields, not an enum; write `pub struct {kind} {{ #[inject] logger: Logger }}`"
                ),
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                format!(
                    "#[{macro_name}] goes on a struct with named fields; write `pub struct {kind} {{ #[inject] logger: Logger }}`"
                ),
            ));
        }
    };

    let mut errors = Vec::new();
    let shape = match &mut item.fields {
        syn::Fields::Unit => Shape::Unit,
        syn::Fields::Unnamed(fields) => Shape::Unsupported(
            fields.span(),
            format!(
                "#[{macro_name}] needs named fields so each dependency has a name; write `struct {kind} {{ #[inject] logger: Logger }}`"
            ),
        ),
        syn::Fields::Named(fields) => {
            let mut out = Vec::new();
            for field in &mut fields.named {
                let mut inject = false;
                let mut inject_args = None;
                field
                    .attrs
                    .retain(|attr| match crate::common::misspelled(attr, &["inject"]) {
                        Some(error) => {
                            errors.push(error);
                            false
                        }
                        None => true,
                    });
                field.attrs.retain(|a| {
                    if a.path().is_ident("inject") {
                        inject = true;
                        if !matches!(a.meta, syn::Meta::Path(_)) {
                            inject_args = Some(a.clone());
                        }
                        false
                    } else {
                        true
                    }
                });
                if let Some(ident) = &field.ident {
                    out.push(Field {
                        ident: ident.clone(),
                        ty: field.ty.clone(),
                        inject,
                        inject_args,
                    });
                }
            }
            Shape::Named(out)
        }
    };
    Ok(Model {
        errors,
        args,
        attr_span,
        item,
        shape,
    })
}

/// The rules every injecting struct follows: not generic, named fields, bare `#[inject]`.
pub(crate) fn validate_struct(model: &Model, what: &str, errors: &mut crate::common::Errors) {
    for error in &model.errors {
        errors.push(error.clone());
    }
    if let Some(param) = model.item.generics.params.first() {
        errors.at(
            param,
            format!("a {what} struct cannot be generic: the backend builds it with concrete types; move the type parameter into a field's type"),
        );
    }
    match &model.shape {
        Shape::Unsupported(span, message) => errors.span(*span, message),
        Shape::Named(fields) => {
            for field in fields {
                if let Some(attr) = &field.inject_args {
                    errors.at(attr, "#[inject] takes no arguments; write `#[inject]`");
                }
            }
        }
        Shape::Unit => {}
    }
}

/// The injected fields.
pub(crate) fn injected(model: &Model) -> impl Iterator<Item = &Field> {
    let fields: &[Field] = match &model.shape {
        Shape::Named(fields) => fields,
        _ => &[],
    };
    fields.iter().filter(|f| f.inject)
}

/// `Self { field: <T as Inject>::inject(ctx).await?, other: <U as FieldDefault>::field_default() }`,
/// each value spanned on the field's type so a type error lands on the user's field.
pub(crate) fn constructor(model: &Model) -> TokenStream {
    use quote::{quote, quote_spanned};
    let p = quote!(::backstage::__private);
    let Shape::Named(fields) = &model.shape else {
        return quote!(Self);
    };
    let inits = fields.iter().map(|f| {
        let field = &f.ident;
        let ty = &f.ty;
        let value = if f.inject {
            quote_spanned!(ty.span()=> <#ty as #p::Inject>::inject(ctx).await?)
        } else {
            quote_spanned!(ty.span()=> <#ty as #p::FieldDefault>::field_default())
        };
        quote! { #field: #value }
    });
    quote!(Self { #(#inits,)* })
}

/// Per injected field, a compile-time check that an extension point belongs to `plugin_id`,
/// spanned on the field's type so the error lands there.
pub(crate) fn owner_checks(model: &Model, plugin_id: &str) -> TokenStream {
    use quote::{quote, quote_spanned};
    // The whole path is written inside `quote_spanned!`: the call's span, where rustc reports a
    // failed constant, must be the field type's, not the attribute's.
    let checks = injected(model).map(|f| {
        let ty = &f.ty;
        quote_spanned!(ty.span()=>
            const _: () = ::backstage::__private::check_owner(
                <#ty as ::backstage::__private::Inject>::OWNER_PLUGIN,
                <#ty as ::backstage::__private::Inject>::WRONG_PLUGIN,
                #plugin_id,
            );
        )
    });
    quote!(#(#checks)*)
}

/// The `#[inject]` dependency table entries of the struct.
pub(crate) fn dependency_table(model: &Model) -> TokenStream {
    use quote::{quote, quote_spanned};
    let p = quote!(::backstage::__private);
    let entries = injected(model).map(|f| {
        let name = f.ident.to_string();
        let ty = &f.ty;
        let line = quote_spanned!(f.ident.span()=> ::core::line!());
        quote! {
            #p::Dependency { field: #name, service: <#ty as #p::Inject>::ID, file: ::core::file!(), line: #line }
        }
    });
    quote!(&[#(#entries),*])
}
