using Microsoft.AspNetCore.Http.Features;

namespace Nexus.Server.Hosting;

/// <summary>
/// How an endpoint answers input that <see cref="InputGuard"/> refuses, in its protocol's own format (the OAuth
/// endpoints answer RFC 6749 errors). Endpoints without one answer an RFC 9457 problem, code <c>invalid_input</c>.
/// </summary>
internal interface IInvalidInputResponder
{
    Task RespondAsync(HttpContext context, string description);
}

/// <summary>A form field the <see cref="InputGuard"/> refused, raised while a handler reads the form.</summary>
internal sealed class InvalidInputException(string description) : Exception(description);

/// <summary>
/// The one place where text from the request line and forms is checked before any handler sees it: a NUL or a
/// lone surrogate (<see cref="InputText"/>) in the path, a query parameter or a form field is a 400, so it never
/// reaches the database (PostgreSQL refuses NUL in text with an error) or a log. JSON bodies are checked where they
/// are parsed (<see cref="JsonBody"/>), OAuth form bodies by their strict reader (OAuthForm).
/// </summary>
internal static class InputGuard
{
    public static IApplicationBuilder UseInputGuard(this IApplicationBuilder app) => app.Use(static (context, next) =>
    {
        var request = context.Request;
        if (Refusal(request) is { } description)
        {
            return RejectAsync(context, description);
        }

        // Checked when a handler reads the form (most never do), not here: reading it eagerly would buffer bodies
        // that handlers stream or parse themselves. HasFormContentType creates the framework's feature to wrap.
        if (request.HasFormContentType && context.Features.Get<IFormFeature>() is { } form and not CheckedForm)
        {
            context.Features.Set<IFormFeature>(new CheckedForm(form));
        }

        return next(context);
    });

    /// <summary>Answers a refused request in the endpoint's format.</summary>
    public static Task RejectAsync(HttpContext context, string description) =>
        context.GetEndpoint()?.Metadata.GetMetadata<IInvalidInputResponder>() is { } responder
            ? responder.RespondAsync(context, description)
            : Problems.Create(ProblemCatalog.InvalidInput, description).ExecuteAsync(context);

    private const string Why = "contains a NUL character or an unpaired UTF-16 surrogate";

    private static string? Refusal(HttpRequest request)
    {
        if (!InputText.IsClean(request.Path.Value) || !InputText.IsClean(request.PathBase.Value))
        {
            return $"The path {Why}.";
        }

        if (!request.QueryString.HasValue)
        {
            return null;
        }

        foreach (var (name, values) in request.Query)
        {
            if (!InputText.IsClean(name))
            {
                return $"A query parameter name {Why}.";
            }

            foreach (var value in values)
            {
                if (!InputText.IsClean(value))
                {
                    return $"The query parameter '{Printable(name)}' {Why}.";
                }
            }
        }

        return null;
    }

    private static string? FormRefusal(IFormCollection form)
    {
        foreach (var (name, values) in form)
        {
            if (!InputText.IsClean(name))
            {
                return $"A form field name {Why}.";
            }

            foreach (var value in values)
            {
                if (!InputText.IsClean(value))
                {
                    return $"The form field '{Printable(name)}' {Why}.";
                }
            }
        }

        foreach (var file in form.Files)
        {
            if (!InputText.IsClean(file.Name) || !InputText.IsClean(file.FileName))
            {
                return $"A file name {Why}.";
            }
        }

        return null;
    }

    /// <summary>A parameter name worth echoing: short and plain; anything else is not repeated back.</summary>
    public static string Printable(string name) =>
        name.Length is > 0 and <= 40 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '[' or ']') ? name : "(unprintable)";

    /// <summary>The framework's form reader, with every field checked once it has been read.</summary>
    private sealed class CheckedForm(IFormFeature inner) : IFormFeature
    {
        public bool HasFormContentType => inner.HasFormContentType;

        public IFormCollection? Form
        {
            get => inner.Form;
            set => inner.Form = value;
        }

        public IFormCollection ReadForm() => Checked(inner.ReadForm());

        public async Task<IFormCollection> ReadFormAsync(CancellationToken cancellationToken) => Checked(await inner.ReadFormAsync(cancellationToken));

        private static IFormCollection Checked(IFormCollection form) =>
            FormRefusal(form) is { } description ? throw new InvalidInputException(description) : form;
    }
}
