//! A pool's theme: how its hosted pages are branded. Every part is optional and checked when
//! parsed, also when read back from storage, so a page never renders an unchecked value.
//!
//! The accent colour is the background of buttons (white text) and the colour of links, so it
//! must keep a contrast of at least 4.5:1 against white (WCAG 2 AA for body text). The logo is
//! an inline `data:` image of a raster type checked by its magic bytes; SVG is refused, since
//! an SVG document can carry scripts and links.

use std::fmt;

use base64::Engine;

use crate::ParseError;

/// The most a logo may weigh, decoded.
pub const LOGO_MAX_BYTES: usize = 48 * 1024;
/// The longest display name, in characters.
pub const DISPLAY_NAME_MAX_CHARS: usize = 64;
/// The least contrast the accent colour keeps against white text.
pub const MIN_ACCENT_CONTRAST: f64 = 4.5;

/// A pool's theme. The default is no theme: the pages show the pool's slug and Gatehouse's
/// own colours.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Theme {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<DisplayName>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub accent_color: Option<AccentColor>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub background_color: Option<Color>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,
}

impl Theme {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// The name the pages show for the pool: 1 to 64 characters, no control characters, not
/// blank.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DisplayName(String);

impl DisplayName {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let field = "DisplayName";
        if s.trim().is_empty() {
            return Err(ParseError::new(field, "must not be blank"));
        }
        if s.chars().count() > DISPLAY_NAME_MAX_CHARS {
            return Err(ParseError::new(
                field,
                format!("must be at most {DISPLAY_NAME_MAX_CHARS} characters"),
            ));
        }
        if s.chars().any(char::is_control) {
            return Err(ParseError::new(
                field,
                "must not contain control characters",
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A colour written `#rrggbb`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Color([u8; 3]);

impl Color {
    pub fn parse(field: &'static str, s: &str) -> Result<Self, ParseError> {
        let hex = s
            .strip_prefix('#')
            .filter(|h| h.len() == 6 && h.bytes().all(|b| b.is_ascii_hexdigit()))
            .ok_or_else(|| ParseError::new(field, "must be a colour written #rrggbb"))?;
        let mut rgb = [0u8; 3];
        for (i, c) in rgb.iter_mut().enumerate() {
            *c = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| ParseError::new(field, "must be a colour written #rrggbb"))?;
        }
        Ok(Self(rgb))
    }

    /// WCAG 2 relative luminance, 0 (black) to 1 (white).
    pub fn relative_luminance(self) -> f64 {
        let channel = |c: u8| {
            let c = f64::from(c) / 255.0;
            if c <= 0.039_28 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        let [r, g, b] = self.0;
        0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    }

    /// The WCAG contrast ratio against white, 1 to 21.
    pub fn contrast_with_white(self) -> f64 {
        1.05 / (self.relative_luminance() + 0.05)
    }
}

impl fmt::Display for Color {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [r, g, b] = self.0;
        write!(f, "#{r:02x}{g:02x}{b:02x}")
    }
}

impl TryFrom<String> for Color {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse("BackgroundColor", &s)
    }
}

impl From<Color> for String {
    fn from(c: Color) -> Self {
        c.to_string()
    }
}

/// The colour of buttons and links: dark enough for white text on it (and for it as text on
/// white) to keep a contrast of 4.5:1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AccentColor(Color);

impl AccentColor {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let field = "AccentColor";
        let c = Color::parse(field, s)?;
        let ratio = c.contrast_with_white();
        if ratio < MIN_ACCENT_CONTRAST {
            return Err(ParseError::new(
                field,
                format!(
                    "{c} has a contrast of {ratio:.2}:1 against white text; \
                     at least {MIN_ACCENT_CONTRAST}:1 is needed (choose a darker colour)"
                ),
            ));
        }
        Ok(Self(c))
    }

    pub fn color(self) -> Color {
        self.0
    }
}

impl fmt::Display for AccentColor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl TryFrom<String> for AccentColor {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<AccentColor> for String {
    fn from(c: AccentColor) -> Self {
        c.to_string()
    }
}

/// The raster image types a logo may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoType {
    Png,
    Jpeg,
    Webp,
}

impl LogoType {
    pub fn media_type(self) -> &'static str {
        match self {
            LogoType::Png => "image/png",
            LogoType::Jpeg => "image/jpeg",
            LogoType::Webp => "image/webp",
        }
    }

    /// The type the bytes' magic number says.
    pub fn sniff(bytes: &[u8]) -> Option<Self> {
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            Some(LogoType::Png)
        } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
            Some(LogoType::Jpeg)
        } else if bytes.len() >= 12 && bytes.starts_with(b"RIFF") && &bytes[8..12] == b"WEBP" {
            Some(LogoType::Webp)
        } else {
            None
        }
    }
}

/// A logo as a `data:` URI (`data:image/png;base64,…`): PNG, JPEG or WebP, whose bytes are
/// what the media type says, at most 48 KiB decoded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Logo {
    uri: String,
    kind: LogoType,
}

impl Logo {
    pub fn parse(s: &str) -> Result<Self, ParseError> {
        let refuse = |m: &str| ParseError::new("Logo", m);
        let rest = s
            .strip_prefix("data:")
            .ok_or_else(|| refuse("must be a data: URI (data:image/png;base64,…)"))?;
        let (media, data) = rest
            .split_once(";base64,")
            .ok_or_else(|| refuse("must be a base64 data: URI (data:image/png;base64,…)"))?;
        let kind = match media.to_ascii_lowercase().as_str() {
            "image/png" => LogoType::Png,
            "image/jpeg" => LogoType::Jpeg,
            "image/webp" => LogoType::Webp,
            "image/svg+xml" => {
                return Err(refuse(
                    "SVG is refused (it can carry scripts); use PNG, JPEG or WebP",
                ));
            }
            _ => return Err(refuse("must be image/png, image/jpeg or image/webp")),
        };
        // A cheap bound before decoding: base64 is 4 characters per 3 bytes.
        if data.len() > LOGO_MAX_BYTES.div_ceil(3) * 4 + 4 {
            return Err(refuse(&format!(
                "must be at most {} KiB",
                LOGO_MAX_BYTES / 1024
            )));
        }
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(data)
            .map_err(|_| refuse("is not valid base64"))?;
        if bytes.len() > LOGO_MAX_BYTES {
            return Err(refuse(&format!(
                "must be at most {} KiB",
                LOGO_MAX_BYTES / 1024
            )));
        }
        if LogoType::sniff(&bytes) != Some(kind) {
            return Err(refuse(&format!(
                "is not a {} image (its bytes say otherwise)",
                kind.media_type()
            )));
        }
        // Kept in one canonical spelling: the media type lowercase.
        Ok(Self {
            uri: format!("data:{};base64,{data}", kind.media_type()),
            kind,
        })
    }

    pub fn as_str(&self) -> &str {
        &self.uri
    }

    pub fn kind(&self) -> LogoType {
        self.kind
    }
}

impl TryFrom<String> for DisplayName {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<DisplayName> for String {
    fn from(n: DisplayName) -> Self {
        n.0
    }
}

impl TryFrom<String> for Logo {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        Self::parse(&s)
    }
}

impl From<Logo> for String {
    fn from(l: Logo) -> Self {
        l.uri
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data_uri(media: &str, bytes: &[u8]) -> String {
        format!(
            "data:{media};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

    #[test]
    fn contrast_follows_wcag() {
        let white = Color::parse("c", "#ffffff").unwrap();
        let black = Color::parse("c", "#000000").unwrap();
        assert!((white.contrast_with_white() - 1.0).abs() < 1e-9);
        assert!((black.contrast_with_white() - 21.0).abs() < 1e-9);
        // Gatehouse's own accent, and the classic borderline greys.
        assert!(AccentColor::parse("#1f5fbf").is_ok());
        assert!(AccentColor::parse("#767676").is_ok()); // 4.54:1
        let err = AccentColor::parse("#777777").unwrap_err(); // 4.48:1
        assert_eq!(err.field, "AccentColor");
        assert!(err.message.contains("4.48"), "{}", err.message);
        assert!(AccentColor::parse("#ffcc00").is_err());
    }

    #[test]
    fn colours_are_written_rrggbb() {
        assert_eq!(Color::parse("c", "#A0b1C2").unwrap().to_string(), "#a0b1c2");
        for bad in [
            "a0b1c2",
            "#abc",
            "#a0b1c2ff",
            "#g0b1c2",
            "",
            "#",
            "red",
            "#+1+2+3",
        ] {
            assert!(Color::parse("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn display_names_are_short_and_printable() {
        assert!(DisplayName::parse("Acme Insurance").is_ok());
        assert!(DisplayName::parse(&"é".repeat(64)).is_ok());
        assert!(DisplayName::parse(&"é".repeat(65)).is_err());
        assert!(DisplayName::parse("   ").is_err());
        assert!(DisplayName::parse("Acme\nInsurance").is_err());
        assert!(DisplayName::parse("Acme\u{7f}").is_err());
    }

    #[test]
    fn logos_are_small_raster_images_that_are_what_they_say() {
        let png = data_uri("image/png", PNG);
        assert_eq!(Logo::parse(&png).unwrap().kind(), LogoType::Png);
        let jpeg = data_uri("image/jpeg", &[0xff, 0xd8, 0xff, 0xe0, 0, 0x10]);
        assert!(Logo::parse(&jpeg).is_ok());
        let webp = data_uri("image/webp", b"RIFF\x24\0\0\0WEBPVP8 ");
        assert!(Logo::parse(&webp).is_ok());
        // The media type is kept lowercase.
        let upper = data_uri("IMAGE/PNG", PNG);
        assert!(
            Logo::parse(&upper)
                .unwrap()
                .as_str()
                .starts_with("data:image/png;")
        );

        let svg = data_uri(
            "image/svg+xml",
            b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        );
        assert!(Logo::parse(&svg).unwrap_err().message.contains("SVG"));
        // A PNG that is really an SVG, or a JPEG that is a PNG.
        assert!(Logo::parse(&data_uri("image/png", b"<svg/>")).is_err());
        assert!(Logo::parse(&data_uri("image/jpeg", PNG)).is_err());
        assert!(Logo::parse("data:image/png;base64,@@@@").is_err());
        assert!(Logo::parse("data:image/png,plain").is_err());
        assert!(Logo::parse("https://example.com/logo.png").is_err());
        assert!(Logo::parse(&data_uri("image/gif", b"GIF89a")).is_err());

        let mut big = PNG.to_vec();
        big.resize(LOGO_MAX_BYTES, 0);
        assert!(Logo::parse(&data_uri("image/png", &big)).is_ok());
        big.push(0);
        let err = Logo::parse(&data_uri("image/png", &big)).unwrap_err();
        assert_eq!(err.field, "Logo");
        assert!(err.message.contains("48 KiB"));
    }

    #[test]
    fn a_theme_round_trips_and_rechecks_when_read() {
        let theme = Theme {
            display_name: Some(DisplayName::parse("Acme").unwrap()),
            accent_color: Some(AccentColor::parse("#1f5fbf").unwrap()),
            background_color: Some(Color::parse("BackgroundColor", "#f0f0f0").unwrap()),
            logo: Some(Logo::parse(&data_uri("image/png", PNG)).unwrap()),
        };
        let json = serde_json::to_string(&theme).unwrap();
        assert_eq!(serde_json::from_str::<Theme>(&json).unwrap(), theme);
        assert_eq!(
            serde_json::from_str::<Theme>("{}").unwrap(),
            Theme::default()
        );
        assert!(serde_json::from_str::<Theme>(r##"{"accent_color":"#ffff00"}"##).is_err());
    }
}
